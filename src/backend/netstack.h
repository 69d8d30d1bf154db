/* network: true for the local sandbox: the sandbox keeps a network namespace
 * of its own, and pasta (Debian's passt package: a user-mode network stack)
 * gives it outbound access through sockets of the engine's host. pasta runs
 * with --no-map-gw, so the gateway address is not the host's loopback: the
 * program reaches neither the host's 127.0.0.1 listeners (a token-less
 * serve, say) nor anything bound to the host's loopback; no port is
 * forwarded in either direction. Since each connection is a host socket,
 * the namespace also gets rules (engine/sandbox/netrules.h) that refuse the host's
 * own addresses and the private, link-local and metadata ranges, but those
 * a policy allows.
 *
 * pasta is not root: when the engine is, pasta starts as the run's uid and
 * gid (the program's host ids) with CAP_SYS_ADMIN alone, by setpriv
 * (util-linux), which it needs only to join the sandbox's user namespace
 * (handed to it as its stdin: it could not open /proc/PID/ns/user of a
 * process of another uid); in there it configures the namespace and holds
 * no capability of the host's. pasta opens /dev/net/tun from inside, as
 * that uid: where the device is not open to other users (udev makes it
 * 0666; a container's /dev may have 0600), pasta runs as root as it did.
 *
 * esb_netstack_prepare builds the rules for a run (before its child is
 * cloned); esb_netstack_attach starts pasta on the child's network
 * namespace and returns once it has configured it (pasta's own start-up,
 * about 30 ms, blocks the caller); esb_netstack_detach stops it and frees
 * the rules. Safe on ESB_NETSTACK_INIT. */
#ifndef ESB_BACKEND_NETSTACK_H
#define ESB_BACKEND_NETSTACK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "engine/sandbox/netrules.h"

struct esb_netstack {
  int pidfd;                  /* pasta's, -1 when none runs */
  struct esb_net_rule *rules; /* owned: for the sandbox's net_rules */
  size_t n_rules;
  uid_t uid;                  /* pasta's ids when the engine is root */
  gid_t gid;
  bool owner;                 /* the sandbox's user namespace is uid's (engine/sandbox/clone.h) */
};

#define ESB_NETSTACK_INIT { .pidfd = -1 }

/* The rules of a run that may reach the ranges allow (and the internet),
 * the ids pasta runs as, and whether uid owns the sandbox's user namespace
 * (then its namespaces are opened as that uid). 0, or -1 with *err. */
int esb_netstack_prepare(struct esb_netstack *ns, const struct esb_net_range *allow, size_t n_allow, uid_t uid,
                         gid_t gid, bool owner, struct esb_error *err);

/* Whether pasta will run as uid/gid (not root) here: the engine is root
 * and /dev/net/tun is open to them. */
bool esb_netstack_unprivileged(uid_t uid, gid_t gid);

/* Returns 0, or -1 with *err (pasta missing, or it failed). */
int esb_netstack_attach(struct esb_netstack *ns, pid_t child, struct esb_error *err);

void esb_netstack_detach(struct esb_netstack *ns);

#endif
