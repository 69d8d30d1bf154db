/* What kubectl writes on its stderr of its own, among the program's stderr
 * (kubectl run --attach passes the program's stderr on as its own): klog
 * lines ("E1127 08:56:18.527967   11982 v2.go:167] ...") and the notice that
 * the attach broke and it fell back to the pod's logs. Pure functions. */
#ifndef ESB_BACKEND_KUBECTL_WORDS_H
#define ESB_BACKEND_KUBECTL_WORDS_H

#include <stdbool.h>
#include <stddef.h>

/* The notice's words: where they are, the output is incomplete (the logs
 * repeat what was already passed on, and what follows may be lost). */
#define ESB_KUBECTL_FELL_BACK "falling back to streaming logs"

/* Is this line (without its newline) one of kubectl's own? */
bool esb_kubectl_own_line(const char *line, size_t n);

/* Removes kubectl's own lines from buf in place; returns the new length.
 * A program line that looks exactly like a klog line goes too. */
size_t esb_kubectl_strip_own_lines(char *buf, size_t len);

/* Keeps only the message of each klog line in buf, in place (for what the
 * engine quotes of kubectl's own commands: get, delete); returns the new
 * length. */
size_t esb_kubectl_unklog(char *buf, size_t len);

#endif
