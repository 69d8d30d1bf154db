/* The exec into a pod that echo-sandbox-kube makes for the engine in place
 * of `kubectl exec -i` (pods/exec over WebSocket, v5.channel.k8s.io:
 * channel 0 stdin, 1 stdout, 2 stderr, 3 the API server's status, 255 a
 * channel closed), where the engine's API client is in use (kube_api.h):
 * a kubectl process costs ~50 ms of CPU, more than the exec of a short run.
 *
 * It presents what kubectl exec -i presents: the command's stdout and
 * stderr bytes on its own stdout and stderr, as they come and exactly
 * (binary, frames split anywhere), its stdin from the engine's to its end
 * (then the v5 close of channel 0: the command reads EOF), and the exit
 * code the API server's status gives as its exit code. And one thing more,
 * which kubectl cannot give: its word on how the exec ended, the last line
 * of its stderr, after a mark that holds a secret the engine gave it on
 * the pipe. The command never sees the secret, so it cannot write the
 * word: the engine tells the command's exit from the exec's failure by
 * the word alone, never by bytes the command controls.
 *
 *   ESB_KUBE_EXEC_MARK SECRET " " WORD [" " WORDS] "\n", WORD one of
 *     exit N        the API server's status: the command exited N (0-255)
 *     error         no status came, or a failure's: the exec failed; WORDS
 *                   say why as kubectl words it ("Error from server
 *                   (NotFound): ..." for a refusal, "error: ..." else)
 *     kubectl       nothing ran: the server does not take this exec (it
 *                   refused the upgrade to v5.channel.k8s.io with a 4xx,
 *                   where kubectl falls back to SPDY): kubectl is to run
 *                   it. A server that upgrades to another protocol than
 *                   the one offered, or answers anything else that is not
 *                   the API's Status (a proxy's 502), may have started the
 *                   command: an error, never kubectl
 *     unauthorized  nothing ran: the credentials were refused (401):
 *                   kubectl, which may renew them, from now on
 *
 * This file: the words, pure, linked into the engine and the helper. */
#ifndef ESB_BACKEND_KUBE_EXEC_H
#define ESB_BACKEND_KUBE_EXEC_H

#include <stdbool.h>
#include <stddef.h>

#define ESB_KUBE_EXEC_MARK "\035"
#define ESB_KUBE_EXEC_SECRET_HEX 32
#define ESB_KUBE_EXEC_PROTOCOL "v5.channel.k8s.io"

enum esb_kube_exec_end {
  ESB_KUBE_EXEC_EXIT,
  ESB_KUBE_EXEC_ERROR,
  ESB_KUBE_EXEC_KUBECTL,
  ESB_KUBE_EXEC_UNAUTHORIZED,
  ESB_KUBE_EXEC__ENDS
};

struct esb_kube_exec_word {
  enum esb_kube_exec_end end;
  int exit_code;            /* with ESB_KUBE_EXEC_EXIT */
  char said[512];           /* the others' words */
};

/* The word after the mark and the secret (" WORD ...\n") into out (n
 * bytes), newlines in said made spaces. */
void esb_kube_exec_word_format(const struct esb_kube_exec_word *w, char *out, size_t n);

/* What followed the mark and the secret (text, len): 0 with *w, or -1
 * where it is no whole word (cut short, garbled). */
int esb_kube_exec_word_parse(const char *text, size_t len, struct esb_kube_exec_word *w);

/* The API server's status of an exec (channel 3; json, len) into *w: exit
 * 0 for Success, exit N for a Failure of reason NonZeroExitCode whose
 * causes hold ExitCode N, an error with its message for any other. */
void esb_kube_exec_status_read(const char *json, size_t len, struct esb_kube_exec_word *w);

#endif
