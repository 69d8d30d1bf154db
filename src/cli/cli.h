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
int esb_cli_pool(int argc, char **argv);
/* cleanup's part for sessions: removes (or, dry_run, lists) what ended
 * sessions left; true when something could not be removed. */
bool esb_cli_session_sweep(bool dry_run);

struct lua_State;
struct esb_plan;
/* Pushes a table of the plan's limits under their policy names
 * (engine/contract/limits.def): policy explain, session create --json. */
void esb_cli_push_plan_limits(struct lua_State *L, const struct esb_plan *plan);

struct esb_policy;
/* Keeps a policy and a Lua state (either may be NULL) reachable until the
 * process exits, which frees them at once: for a command that has printed
 * its result and ends (cli/run.c). */
void esb_cli_leave_to_the_exit(struct esb_policy *policy, struct lua_State *L);

#endif
