/* What the policy made of a request: everything a backend needs to run it,
 * with every default applied. Built by the policy layer (src/policy), run by
 * a backend (src/backend). Pointers are owned by the plan unless noted. */
#ifndef ESB_BACKEND_PLAN_H
#define ESB_BACKEND_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "engine/contract/collect.h"
#include "engine/sandbox/netrules.h"
#include "engine/contract/request.h"
#include "engine/sandbox/rootfs.h"
#include "engine/sandbox/seccomp.h"
#include "engine/sandbox/spawn.h"
#include "engine/strv.h"

/* How the local backend isolates a program. */
enum esb_isolation {
  ESB_ISOLATION_NAMESPACES,  /* namespaces + rlimits; an error where the host refuses them */
  ESB_ISOLATION_BEST_EFFORT, /* namespaces where the host allows them, else rlimits only */
  ESB_ISOLATION_RLIMITS,     /* rlimits (and another uid when root) only: for hosts that
                                are a sandbox already, or tools that cannot follow
                                namespaces (valgrind) */
};

/* The isolation words, for parsing and printing alike. */
const char *esb_isolation_name(enum esb_isolation isolation);
int esb_isolation_parse(const char *name, enum esb_isolation *isolation); /* 0, or -1 unknown */

struct esb_local_settings {
  uid_t uid;                 /* the ids the program runs as when the engine is root: inside */
  gid_t gid;                 /* its user namespace, or on the host without a uid range */
  uint64_t uid_first;        /* when the engine is root and uid_count > 0: each run's own */
  uint64_t uid_count;        /* host uid (and gid) of [uid_first, +uid_count) (engine/runtime/uid_slot.h) */
  enum esb_isolation isolation;
  bool network;              /* false: a new network namespace with loopback only */
  struct esb_net_range *network_allow; /* with network: ranges reachable though private
                                (engine/sandbox/netrules.h); the host's own addresses stay refused */
  size_t n_network_allow;
  bool cgroups;              /* memory, pids and CPU limits by cgroup where the host allows */
  uint64_t memory_bytes;     /* the memory limit: the cgroup's, else RLIMIT_AS stands in */
  uint64_t tmp_size_bytes;   /* the sandbox's /tmp and /dev/shm */
  uint64_t workdir_size_bytes; /* the working dir's tmpfs */
  char *working_dir;         /* the working dir's path inside when the request names none */
  struct esb_mount *mounts;  /* the host paths of the sandbox's root (strings owned) */
  size_t n_mounts;
  enum esb_seccomp_profile seccomp; /* the program's system-call filter */
  uint64_t cpu_millicores;   /* the CPU rate by cgroup (cores x 1000); 0: none */
  struct esb_rlimits limits; /* address_space unset: it is memory_bytes or nothing */
};

/* Filled only for the k8s backend (and explain). */
struct esb_k8s_settings {
  char *image;
  char *namespace_;
  char *pod_name;            /* echo-sandbox-<32 hex>: a DNS-1123 label */
  char instance[33];         /* the pod's echo-sandbox.io/instance label: this engine's */
  char *overrides_json;      /* the pod override, invariants applied */
  char *pod_running_timeout;
  char *context;             /* NULL: kubectl's current context */
  char *kubeconfig;          /* NULL: $KUBECONFIG or kubectl's default */
  uint64_t delete_timeout_ms;
  uint64_t unschedulable_grace_ms; /* how long a pod may stay unschedulable */
  uint64_t not_ready_grace_ms; /* how long a running pod may be not ready with a silent attach */
  bool handshake;
  char *warm_pool;           /* the policy's warm pool whose shape the pod has (k8s_warm.h):
                                the run may take a pod of it; NULL: none */
  char warm_hash[17];        /* with warm_pool: its shape's hash, the pods' label */
  uint64_t warm_claim_grace_ms; /* with warm_pool: how long the claim may take */
};

/* The network by name on Kubernetes (backend/egress_token.h): the
 * policy's egress.k8s, then what the engine made of it for the run
 * (backend/egress_helper.h: esb_egress_k8s_prepare). */
struct esb_egress_k8s {
  char *proxy;               /* the shared proxy's URL, http://HOST:PORT */
  char *key_file;            /* the tokens' key, as the engine reads it (the Secret's copy) */
  char *ca_file;             /* the proxy's CA certificate (PEM): the pods' to trust, where
                                the plan injects credentials */
  uint64_t grace_s;          /* how long a token outlives its run's deadline */
  char *token;               /* the run's, once signed */
  char *ca_pem, *bundle;     /* the CA certificate, and it with the engine host's trust
                                store: files of the pod */
  size_t ca_len, bundle_len;
};

struct esb_plan {
  enum esb_backend backend;
  char **argv;               /* NULL-terminated */
  char **env;                /* NULL-terminated "K=V"; HOME is added by the backend */
  char *working_dir;         /* the request's, a path inside the sandbox; NULL: the
                                local sandbox's default */
  const char *stdin_data;    /* borrowed from the request */
  size_t stdin_len;
  int stdin_fd;              /* borrowed from the request: -1, or streamed after stdin_data */
  const struct esb_file *files; /* for the working dir: the request's, and the code's
                                file when there is one (then in owned_files, whose
                                entries borrow the request's bytes) */
  size_t n_files;
  struct esb_file *owned_files;
  char *code_file;           /* where the local backend writes the request's code */
  uint64_t max_code_bytes;
  uint64_t max_files;        /* the policy's ceilings of the request's files: how many, */
  uint64_t max_files_bytes;  /* and how many bytes together */
  struct esb_collect_spec collect; /* the files the result brings back: the request's
                                patterns (borrowed), the policy's ceilings */
  uint64_t timeout_ms;
  uint64_t kill_grace_ms;
  uint64_t max_output_bytes;
  uint64_t max_open_files;   /* the run's open files: local.limits.open_files is the lower of
                                it and the local sandbox's; on k8s an annotation (policy/policy.c) */
  uint64_t max_stream_bytes; /* the most of a run's output (both streams) that
                                live output events carry */
  char **clamped;            /* NULL-terminated notes of what of the request the policy
                                lowered to its ceilings; NULL when nothing was */
  char **egress_allow;       /* NULL-terminated: the network by name (engine/contract/egress.h),
                                the hosts the local backend's egress proxy lets the program
                                reach (local.network is then false); NULL: no proxy */
  char **egress_deny;        /* NULL-terminated or NULL: hosts refused whatever allow says */
  struct esb_egress_inject *egress_inject; /* credentials the proxy adds outside the
                                sandbox (backend/egress_inject.h), n_egress_inject of them */
  size_t n_egress_inject;
  char **egress_secrets;     /* NULL-terminated "name=file": where each secret's value is,
                                read by the engine when the run starts, never by the policy */
  char *egress_upstream_ca;  /* PEM file the proxy verifies injected hosts against;
                                NULL: the host's trust store */
  struct esb_egress_k8s egress_k8s; /* backend k8s: the shared proxy (its proxy NULL: none) */
  char *egress_hosts_file;   /* a hosts(5) file the proxy resolves names from first, read
                                itself (no NSS, no /etc/hosts); NULL: none */
  bool fallback_local;       /* backend k8s: when the cluster does not answer, the
                                policy allows the local backend instead (its
                                plan's fallback = "local"); else never */
  struct esb_local_settings local;
  struct esb_k8s_settings k8s;
};

/* A host whose requests get a header with a secret's value (the policy's
 * egress.inject["api.github.com"] = { header = ..., secret = ... }). */
struct esb_egress_inject {
  char *host;    /* a host name: no "*.", no port */
  char *header;  /* the header's name, an HTTP token */
  char *secret;  /* a name of egress_secrets */
};

/* The kubelet's grace for a run's pod (terminationGracePeriodSeconds, and
 * the engine's delete): the plan's kill_grace_ms rounded up to a second, at
 * least 1 (kubectl takes 0 only with --force, which skips the kubelet). */
static inline uint64_t esb_k8s_grace_seconds(uint64_t kill_grace_ms) {
  uint64_t s = (kill_grace_ms + 999) / 1000;
  return s ? s : 1;
}

/* The defaults of what a policy's plan may leave out. */
#define ESB_PLAN_INIT { .backend = ESB_BACKEND_LOCAL, .kill_grace_ms = 200, .max_output_bytes = 1u << 20, \
                        .max_stream_bytes = 64u << 20, .max_files = 256, .max_files_bytes = 8u << 20, \
                        .max_code_bytes = 8u << 20, \
                        .collect = { .max_count = 64, .max_file_bytes = 4u << 20, .max_bytes = 16u << 20 }, \
                        .stdin_fd = -1, \
                        .local = { .uid = 65534, .gid = 65534, .isolation = ESB_ISOLATION_NAMESPACES, \
                                   .cgroups = true, .tmp_size_bytes = 64u << 20, \
                                   .workdir_size_bytes = 256u << 20 } }

void esb_plan_release(struct esb_plan *plan);

/* Frees n injections and their array (a plan's, a token's grant's). */
static inline void esb_egress_inject_free(struct esb_egress_inject *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(v[i].host);
    free(v[i].header);
    free(v[i].secret);
  }
  free(v);
}

/* Frees the plan's egress fields (lists, injections, secrets' files):
 * esb_plan_release's part that echo-sandbox-egress, which reads only
 * those, shares. Inline: that program links no plan.c. */
static inline void esb_plan_release_egress(struct esb_plan *plan) {
  esb_strv_free(plan->egress_allow);
  esb_strv_free(plan->egress_deny);
  esb_egress_inject_free(plan->egress_inject, plan->n_egress_inject);
  esb_strv_free(plan->egress_secrets);
  free(plan->egress_upstream_ca);
  free(plan->egress_hosts_file);
  struct esb_egress_k8s *k = &plan->egress_k8s;
  free(k->proxy);
  free(k->key_file);
  free(k->ca_file);
  free(k->token);
  free(k->ca_pem);
  free(k->bundle);
}

/* Frees the strings of k8s settings and zeroes them. */
void esb_k8s_settings_release(struct esb_k8s_settings *k);

#endif
