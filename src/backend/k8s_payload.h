/* The k8s half of files in, code as a file and files out: what the engine
 * sends the container's wrapper (backend/k8s_payload.sh, the container's
 * first program in place of the plain handshake) on stdin, and how it reads
 * the wrapper's frames back out of kubectl's stdout.
 *
 * stdin: the handshake (backend/k8s_command.h), then the header line
 *   "INDEX_BYTES DATA_BYTES STDIN_BYTES MAX_COUNT MAX_FILE_BYTES MAX_BYTES MARKER"
 * then the block: the index ("f OFFSET LENGTH MODE PATH" a file, OFFSET from
 * the start of the data; "c PATTERN" a collect pattern; an empty line last),
 * the files' bytes, and the program's stdin (STDIN_BYTES of it: the request's,
 * then a streamed file's). The wrapper spools the block in the working dir
 * before it writes anything, so the program's stdin is a file there.
 *
 * stdout: first one line of the wrapper's own, written before the program
 * exists, so the program cannot write it: ESB_K8S_STARTED (the program runs
 * now: all that follows is its output) or ESB_K8S_WRAPPER_FAILED and the
 * step that failed (the program never ran: a backend error, never the
 * program's exit). Only the first line counts: the same words later are
 * the program's.
 *
 * With collect, then: the program's output; MARKER and a newline, then
 * frames "F LENGTH SIZE PATH\n" + LENGTH bytes, and "E MORE BYTES\n" last,
 * BYTES the frames' length. The wrapper writes them once the program has
 * ended and every process it left in the pod is killed (then nothing but
 * the wrapper holds the stream): what ends the stream is the wrapper's, and
 * the frames are found from that end (BYTES back from the E line, right
 * after a MARKER line), not from the first MARKER. MARKER is random per
 * run, so a program's output does not look like it by chance; one that
 * reads it out of the wrapper's memory can only delay its own output (held
 * from a MARKER on until the end says whose it was). The frames are checked
 * against the engine's own pattern matcher and ceilings (engine/contract/collect.h)
 * all the same. */
#ifndef ESB_BACKEND_K8S_PAYLOAD_H
#define ESB_BACKEND_K8S_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/plan.h"
#include "engine/contract/capture.h"
#include "engine/contract/collect.h"

/* The wrapper's source (k8s_payload.sh), compiled in. */
extern const char esb_k8s_payload_script[];

/* Whether the plan needs the wrapper: files for the working dir (the code's
 * file among them) or collect patterns. */
bool esb_k8s_payload_wanted(const struct esb_plan *plan);

/* Why the plan's files or patterns cannot go to the wrapper, which reads
 * lines (a newline in a path or pattern), or that the policy turned the
 * handshake off (the wrapper is a shell script): -1 with *err (invalid_request);
 * else 0. */
int esb_k8s_payload_check(const struct esb_plan *plan, struct esb_error *err);

/* "\036echo-sandbox-files-" and 32 random hex digits. */
#define ESB_K8S_MARKER_SIZE 53 /* with its NUL */
int esb_k8s_payload_marker(char marker[ESB_K8S_MARKER_SIZE]); /* 0, or -1 with errno */

/* The header line and the block up to the program's stdin, which is
 * stdin_bytes long and follows it (the handshake is not in it).
 * A malloc'd buffer and its length, or NULL (ENOMEM). */
char *esb_k8s_payload_head(const struct esb_plan *plan, uint64_t stdin_bytes, const char *marker, size_t *len);

/* The wrapper's first line on stdout (engine and k8s_payload.sh). */
#define ESB_K8S_STARTED "\036echo-sandbox-started"
#define ESB_K8S_WRAPPER_FAILED "\036echo-sandbox-wrapper-failed "

/* kubectl's stdout, split as it comes into the wrapper's first line, the
 * program's output and (with collect) the frames. */
typedef void (*esb_k8s_output_fn)(const char *data, size_t len, void *userdata);

enum esb_k8s_start {
  ESB_K8S_START_WAITING,  /* the wrapper's first line has not come (whole) */
  ESB_K8S_START_STARTED,  /* the program runs: what follows is its own */
  ESB_K8S_START_FAILED,   /* the wrapper failed at step, the program never ran */
  ESB_K8S_START_GARBLED,  /* the first line was neither: the program never ran */
};

struct esb_k8s_frames {
  enum esb_k8s_start start;
  char step[ESB_MESSAGE_MAX];           /* the first line until whole, then the
                                           failed step (or what came instead) */
  size_t step_len;
  bool collect;                         /* the frames follow the output */
  char marker[ESB_K8S_MARKER_SIZE + 1]; /* with its newline */
  size_t marker_len;
  char held[ESB_K8S_MARKER_SIZE + 1];   /* output that may be the marker's start */
  size_t held_len;
  bool seen;                            /* a marker came: what follows is held */
  struct esb_capture frames;            /* kept up to what the ceilings allow */
  size_t section, end;                  /* where in frames the real ones start
                                           and end (found from the end; section
                                           SIZE_MAX: not found) */
  bool more;                            /* the wrapper left files out */
};

/* Readies f for a run of the wrapper whose frames (if spec has patterns)
 * take at most spec's ceilings. */
void esb_k8s_frames_init(struct esb_k8s_frames *f, const char *marker, const struct esb_collect_spec *spec);

/* A chunk of kubectl's stdout: the program's part goes to out, at once but
 * for the wrapper's first line and a tail that may be the marker's start. */
void esb_k8s_frames_feed(struct esb_k8s_frames *f, const char *data, size_t len, esb_k8s_output_fn out,
                         void *userdata);

/* kubectl's stdout ended: a held tail that never became the marker is
 * output; the frames are found from the end, and what was held before them
 * (output after a marker the program wrote itself) is output too. */
void esb_k8s_frames_end(struct esb_k8s_frames *f, esb_k8s_output_fn out, void *userdata);

/* The frames into *c, only files a pattern of spec matches, within its
 * ceilings: 0; or -1 with errno (EPROTO: frames cut short or malformed, or
 * no end of the wrapper's; ENOENT: the marker never came, as when the run
 * was killed). After esb_k8s_frames_end. */
int esb_k8s_frames_read(const struct esb_k8s_frames *f, const struct esb_collect_spec *spec,
                        struct esb_collected *c);

void esb_k8s_frames_release(struct esb_k8s_frames *f);

#endif
