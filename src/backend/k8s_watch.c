#include "backend/k8s_watch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/json_split.h"
#include "backend/k8s.h"
#include "backend/k8s_command.h"
#include "engine/strv.h"

extern char **environ;

struct esb_k8s_watcher {
  struct esb_loop *loop;
  char *namespace_, *context, *kubeconfig; /* owned copies: what the watch connects with */
  esb_pod_status_parser parse;
  esb_k8s_event_fn on_event;
  struct esb_exec exec;
  char **argv;
  struct esb_json_split split;
  struct esb_timer restart;
  struct esb_exec list_exec;    /* the names of the pods there now (see start_list) */
  struct esb_timer list_timer;  /* starts it, once the watch has listed */
  char **list_argv;
  uint64_t list_started_ns;
  bool listing;                 /* list_exec is in flight */
  bool running;                 /* exec is in flight */
  bool stopping;                /* and told to end: its last run left */
  struct esb_k8s_run **runs;    /* joined */
  size_t nruns, cap_runs;
  struct esb_pod_status *latest; /* each pod's latest state, for runs that join after its
                                    events; a DELETED pod leaves */
  size_t nlatest, cap_latest;
  struct esb_k8s_watcher *next;
};

static struct esb_k8s_watcher *watchers;
static pthread_mutex_t watchers_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void free_watcher(struct esb_k8s_watcher *w) {
  esb_timer_stop(w->loop, &w->list_timer);
  free(w->namespace_);
  free(w->context);
  free(w->kubeconfig);
  esb_strv_free(w->argv);
  esb_strv_free(w->list_argv);
  esb_json_split_release(&w->split);
  esb_result_release(&w->exec.result);
  esb_result_release(&w->list_exec.result);
  free(w->runs);
  free(w->latest);
  free(w);
}

static struct esb_pod_status *latest_of(struct esb_k8s_watcher *w, const char *name) {
  for (size_t i = 0; i < w->nlatest; i++)
    if (strcmp(w->latest[i].name, name) == 0)
      return &w->latest[i];
  return NULL;
}

/* Keeps p as its pod's latest state (a DELETED pod is forgotten); out of
 * memory, a late joiner just learns less. */
static void remember(struct esb_k8s_watcher *w, const struct esb_pod_status *p) {
  struct esb_pod_status *l = latest_of(w, p->name);
  if (strcmp(p->event, "DELETED") == 0) {
    if (l)
      *l = w->latest[--w->nlatest];
    return;
  }
  if (l) {
    *l = *p;
    return;
  }
  if (w->nlatest == w->cap_latest) {
    size_t cap = w->cap_latest ? w->cap_latest * 2 : 16;
    struct esb_pod_status *more = realloc(w->latest, cap * sizeof *more);
    if (!more)
      return;
    w->latest = more;
    w->cap_latest = cap;
  }
  w->latest[w->nlatest++] = *p;
}

static void on_object(const char *text, size_t len, void *userdata) {
  struct esb_k8s_watcher *w = userdata;
  struct esb_pod_status p;
  if (!w->parse || w->parse(text, len, &p) < 0 || !p.name[0])
    return;
  remember(w, &p);
  /* A callback may leave: look the run up each time. */
  for (size_t i = 0; i < w->nruns; i++) {
    if (strcmp(w->runs[i]->plan->k8s.pod_name, p.name) == 0) {
      w->on_event(w->runs[i], &p);
      break;
    }
  }
}

static void on_output(struct esb_exec *exec, int stream, const char *data, size_t len, void *userdata) {
  (void)exec;
  struct esb_k8s_watcher *w = userdata;
  if (stream == 1)
    esb_json_split_feed(&w->split, data, len, 4u << 20, on_object, w);
}

static int start_exec(struct esb_k8s_watcher *w);

static void restart(void *userdata) {
  struct esb_k8s_watcher *w = userdata;
  if (w->nruns > 0 && !w->running)
    start_exec(w);
}

static void unlink_watcher(struct esb_k8s_watcher *w) {
  pthread_mutex_lock(&watchers_lock);
  for (struct esb_k8s_watcher **p = &watchers; *p; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      break;
    }
  }
  pthread_mutex_unlock(&watchers_lock);
}

static void on_done(struct esb_exec *exec, void *userdata) {
  struct esb_k8s_watcher *w = userdata;
  esb_result_release(&exec->result);
  w->running = false;
  esb_json_split_release(&w->split);
  if (w->nruns == 0 && w->listing) {
    esb_exec_stop(&w->list_exec); /* its on_done frees the watcher */
    return;
  }
  if (w->nruns == 0) {
    unlink_watcher(w);
    esb_timer_stop(w->loop, &w->restart);
    free_watcher(w);
    return;
  }
  /* Runs joined while it was ending: at once. It ended by itself with runs
   * still there (the API server went away): again in a second. */
  bool ours = w->stopping;
  w->stopping = false;
  if (ours && start_exec(w) == 0)
    return;
  w->restart = (struct esb_timer){ .at_ns = esb_now_ns() + 1000000000ull, .fire = restart, .userdata = w };
  esb_timer_start(w->loop, &w->restart);
}

/* ---- the list beside the watch ----
 * A watch tells what changes from the moment it starts; a pod deleted before
 * that (in a run's first second, or while a cut watch was started again) is
 * no event at all, and its run would wait for its deadline. So each start of
 * the watch comes with a list of the pods there: a run whose pod was known to
 * exist before the list began, and which the list lacks, is told DELETED.
 * It begins a moment after the watch (ESB_K8S_LIST_AFTER_MS), once the
 * watch's own list is done: a pod that goes after that is the watch's
 * DELETED event, one that went before is missing from this list. (A watch
 * whose list takes longer leaves a window: a pod that goes between the two
 * lists is seen by neither.) */

static bool listed(const char *names, size_t len, const char *name) {
  size_t n = strlen(name);
  for (const char *p = names, *end = names + len; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t line = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (line == n + 4 && memcmp(p, "pod/", 4) == 0 && memcmp(p + 4, name, n) == 0)
      return true;
    p += line + 1;
  }
  return false;
}

static void on_list_done(struct esb_exec *exec, void *userdata) {
  struct esb_k8s_watcher *w = userdata;
  w->listing = false;
  const struct esb_result *r = &exec->result;
  if (r->status == ESB_STATUS_EXITED && r->exit_code == 0 && r->out.total == r->out.len) {
    /* A callback may leave: from the end, each run looked at once. */
    for (size_t i = w->nruns; i-- > 0;) {
      struct esb_k8s_run *run = i < w->nruns ? w->runs[i] : NULL;
      if (!run || !run->pod_seen || run->confirmed_ns >= w->list_started_ns ||
          listed(r->out.data ? r->out.data : "", r->out.len, run->plan->k8s.pod_name))
        continue;
      struct esb_pod_status gone = { .event = "DELETED" };
      snprintf(gone.name, sizeof gone.name, "%s", run->plan->k8s.pod_name);
      w->on_event(run, &gone);
    }
  }
  esb_result_release(&w->list_exec.result);
  if (w->nruns == 0 && !w->running) {
    unlink_watcher(w);
    esb_timer_stop(w->loop, &w->restart);
    free_watcher(w);
  }
}

static void start_list(void *userdata) {
  struct esb_k8s_watcher *w = userdata;
  if (w->listing || w->nruns == 0)
    return;
  if (!w->list_argv) {
    struct esb_k8s_settings k = { .namespace_ = w->namespace_, .context = w->context, .kubeconfig = w->kubeconfig };
    const char *tail[] = {"get", "pods", "-l", "app.kubernetes.io/managed-by=echo-sandbox", "-o", "name", NULL};
    if (!(w->list_argv = esb_k8s_kubectl_argv(&k, tail)))
      return; /* out of memory: the watch alone */
  }
  w->list_exec = (struct esb_exec)ESB_EXEC_INIT;
  struct esb_exec_options o = ESB_EXEC_OPTIONS_INIT;
  o.argv = (const char *const *)w->list_argv;
  o.env = (const char *const *)environ;
  o.kill_grace_ms = 1000;
  o.timeout_ms = 30000;
  o.max_output_bytes = 16u << 20;
  o.on_done = on_list_done;
  o.userdata = w;
  w->list_started_ns = esb_now_ns();
  if (esb_exec_start(w->loop, &w->list_exec, &o) < 0) {
    esb_result_release(&w->list_exec.result);
    return;
  }
  w->listing = true;
}

static int start_exec(struct esb_k8s_watcher *w) {
  if (!w->argv) {
    struct esb_k8s_settings k = { .namespace_ = w->namespace_, .context = w->context, .kubeconfig = w->kubeconfig };
    const char *tail[] = {"get", "pods", "-l", "app.kubernetes.io/managed-by=echo-sandbox", "--watch",
                          "--output-watch-events", "-o", "json", NULL};
    if (!(w->argv = esb_k8s_kubectl_argv(&k, tail)))
      return -1;
  }
  w->exec = (struct esb_exec)ESB_EXEC_INIT;
  struct esb_exec_options o = ESB_EXEC_OPTIONS_INIT;
  o.argv = (const char *const *)w->argv;
  o.env = (const char *const *)environ;
  o.kill_grace_ms = 1000;
  o.max_output_bytes = 4096; /* the events go through on_output */
  o.on_output = on_output;
  o.on_done = on_done;
  o.userdata = w;
  if (esb_exec_start(w->loop, &w->exec, &o) < 0) {
    esb_result_release(&w->exec.result);
    return -1;
  }
  w->running = true;
  esb_timer_stop(w->loop, &w->list_timer);
  w->list_timer = (struct esb_timer){ .at_ns = esb_now_ns() + ESB_K8S_LIST_AFTER_MS * 1000000ull,
                                      .fire = start_list, .userdata = w };
  esb_timer_start(w->loop, &w->list_timer);
  return 0;
}

/* The watch of the run's loop and cluster, made when there is none. */
static struct esb_k8s_watcher *watcher_for(struct esb_k8s_run *run, esb_k8s_event_fn on_event) {
  const struct esb_k8s_settings *k = &run->plan->k8s;
  pthread_mutex_lock(&watchers_lock);
  struct esb_k8s_watcher *w = watchers;
  while (w && !(w->loop == run->loop && same(w->namespace_, k->namespace_) && same(w->context, k->context) &&
                same(w->kubeconfig, k->kubeconfig)))
    w = w->next;
  if (!w && (w = calloc(1, sizeof *w))) {
    w->loop = run->loop;
    w->parse = run->parse_pod;
    w->on_event = on_event;
    w->exec = (struct esb_exec)ESB_EXEC_INIT;
    w->namespace_ = k->namespace_ ? strdup(k->namespace_) : NULL;
    w->context = k->context ? strdup(k->context) : NULL;
    w->kubeconfig = k->kubeconfig ? strdup(k->kubeconfig) : NULL;
    if ((k->namespace_ && !w->namespace_) || (k->context && !w->context) || (k->kubeconfig && !w->kubeconfig)) {
      free_watcher(w);
      w = NULL;
    } else {
      w->next = watchers;
      watchers = w;
    }
  }
  pthread_mutex_unlock(&watchers_lock);
  return w;
}

int esb_k8s_watch_join(struct esb_k8s_run *run, esb_k8s_event_fn on_event) {
  struct esb_k8s_watcher *w = watcher_for(run, on_event);
  if (!w)
    return -1;
  if (w->nruns == w->cap_runs) {
    size_t cap = w->cap_runs ? w->cap_runs * 2 : 8;
    struct esb_k8s_run **runs = realloc(w->runs, cap * sizeof *runs);
    if (!runs)
      return -1;
    w->runs = runs;
    w->cap_runs = cap;
  }
  w->runs[w->nruns++] = run;
  run->watcher = w;
  esb_timer_stop(w->loop, &w->restart);
  if (!w->running && start_exec(w) < 0) {
    esb_k8s_watch_leave(run);
    return -1;
  }
  /* What the watch knows of the pod already. */
  struct esb_pod_status *l = latest_of(w, run->plan->k8s.pod_name);
  if (l) {
    struct esb_pod_status p = *l; /* on_event may change the table */
    on_event(run, &p);
  }
  return 0;
}

void esb_k8s_watch_leave(struct esb_k8s_run *run) {
  struct esb_k8s_watcher *w = run->watcher;
  if (!w)
    return;
  run->watcher = NULL;
  for (size_t i = 0; i < w->nruns; i++) {
    if (w->runs[i] == run) {
      w->runs[i] = w->runs[--w->nruns];
      break;
    }
  }
  if (w->nruns > 0)
    return;
  if (w->running) {
    w->stopping = true;
    esb_exec_stop(&w->exec); /* on_done frees it, unless a run joins first */
  } else if (w->listing) {
    esb_exec_stop(&w->list_exec); /* on_list_done frees it */
  } else {
    esb_timer_stop(w->loop, &w->restart);
    unlink_watcher(w);
    free_watcher(w);
  }
}
