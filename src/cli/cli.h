/* The echo-sandbox command line: one file per subcommand. */
#ifndef ESB_CLI_CLI_H
#define ESB_CLI_CLI_H

int esb_cli_run(int argc, char **argv);
int esb_cli_policy(int argc, char **argv);
int esb_cli_cleanup(int argc, char **argv);
int esb_cli_doctor(int argc, char **argv);
int esb_cli_batch(int argc, char **argv);
int esb_cli_serve(int argc, char **argv);

#endif
