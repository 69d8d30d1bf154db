/* The echo-sandbox command line: one file per subcommand. */
#ifndef ESB_CLI_CLI_H
#define ESB_CLI_CLI_H

#include <stdbool.h>

int esb_cli_run(int argc, char **argv);
int esb_cli_policy(int argc, char **argv);
int esb_cli_cleanup(int argc, char **argv);
int esb_cli_doctor(int argc, char **argv);
int esb_cli_batch(int argc, char **argv);
int esb_cli_serve(int argc, char **argv);
int esb_cli_session(int argc, char **argv);
/* cleanup's part for sessions: removes (or, dry_run, lists) what ended
 * sessions left; true when something could not be removed. */
bool esb_cli_session_sweep(bool dry_run);

#endif
