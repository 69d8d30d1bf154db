/* network: true for the local sandbox: the sandbox keeps a network namespace
 * of its own, and pasta (Debian's passt package: a user-mode network stack)
 * gives it outbound access through sockets of the engine's host. pasta runs
 * with --no-map-gw, so the gateway address is not the host's loopback: the
 * program reaches neither the host's 127.0.0.1 listeners (a token-less
 * serve, say) nor anything bound to the host's loopback; no port is
 * forwarded in either direction.
 *
 * esb_netstack_attach starts pasta on a child's network namespace and
 * returns once it has configured it (pasta's own start-up, about 30 ms,
 * blocks the caller); esb_netstack_detach stops it. Safe on
 * ESB_NETSTACK_INIT. */
#ifndef ESB_BACKEND_NETSTACK_H
#define ESB_BACKEND_NETSTACK_H

#include <stddef.h>
#include <sys/types.h>

struct esb_netstack {
  int pidfd; /* pasta's, -1 when none runs */
};

#define ESB_NETSTACK_INIT { .pidfd = -1 }

/* Returns 0, or -1 with a reason (pasta missing, or it failed). */
int esb_netstack_attach(struct esb_netstack *ns, pid_t child, char *why, size_t whylen);

void esb_netstack_detach(struct esb_netstack *ns);

#endif
