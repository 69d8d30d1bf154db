/* A session's files on the host (backend/local_session.h lists them), and
 * its holder's liveness, for the session code alone. */
#ifndef ESB_BACKEND_LOCAL_SESSION_FILES_H
#define ESB_BACKEND_LOCAL_SESSION_FILES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/local_session.h"
#include "engine/cgroup.h"
#include "engine/contract/request.h"
#include "engine/error.h"
#include "engine/sandbox/session_holder.h"

/* The most labels a record keeps (policy/session.h's ESB_SESSION_LABELS_MAX). */
#define ESB_SESSION_RECORD_LABELS 64
#define ESB_SESSION_RECORD_KERNELS 16

/* The engine's record of a session: its `info` file. */
struct esb_session_record {
  pid_t pid;                 /* the holder, on the host */
  uint64_t start;            /* its start time (/proc/PID/stat), against a reused pid */
  uint64_t created_ms, ttl_ms, idle_timeout_ms;
  uid_t inner_uid;           /* the ids runs take inside (the session's id maps) */
  gid_t inner_gid;
  uint64_t address_space;    /* RLIMIT_AS of its runs: 0 where a cgroup limits memory */
  uint64_t memory_bytes;     /* the session's memory cgroup's limit; 0: none */
  const char *cgroups[ESB_CGROUP__COUNT]; /* the cgroups' paths; NULL: none */
  enum esb_cgroup_version cgroup_version;
  const char *labels[ESB_SESSION_RECORD_LABELS]; /* "KEY=VALUE", checked when it was made */
  size_t n_labels;
  const char *kernels[ESB_SESSION_RECORD_KERNELS]; /* the languages the policy gave kernels */
  size_t n_kernels;
  char *owned;               /* read back: the strings above point in here */
};

/* Makes base (and its parents) 0700 where missing. */
int esb_session_files_base(const char *base, struct esb_error *err);

/* The id is 32 hex digits (a path component of ours, nothing else). */
bool esb_session_id_valid(const char *id);

int esb_session_record_write(const char *dir, const struct esb_session_record *rec, struct esb_error *err);
/* 0; -1 where there is no record (yet), with errno. */
int esb_session_record_read(const char *dir, struct esb_session_record *rec);
void esb_session_record_release(struct esb_session_record *rec);

/* The holder's word in the state file, and the runs it counted; no word
 * is ESB_SESSION_ALIVE, which holds only while the holder lives. */
void esb_session_state_read(const char *dir, enum esb_session_end *end, uint64_t *runs);

/* A process's start time (field 22 of /proc/PID/stat); 0 where it is gone. */
uint64_t esb_session_proc_start(pid_t pid);
/* Whether pid is still the holder that started at start (not a zombie). */
bool esb_session_holder_alive(pid_t pid, uint64_t start);

/* Removes the files of a session's directory, then the directory. */
void esb_session_files_remove(const char *dir);

/* A kernel's plan in the session of rec (its ids, its address-space
 * limit), as the holder reads it: *fd a memfd. 0, or -1 with r failed. */
struct esb_plan;
struct esb_result;
int esb_session_write_plan(const struct esb_plan *plan, const struct esb_session_record *rec, int *fd,
                           struct esb_result *r);

/* The session's cgroups as a struct esb_cgroup to read (its OOM kills)
 * and to make its runs' below, pointing into rec: never to be destroyed.
 * false: it has none. */
bool esb_session_cgroup_view(const struct esb_session_record *rec, struct esb_cgroup *cg);

/* Closes what our struct holds of cgroups whose lock another process
 * holds too, and frees it, leaving the cgroups as they are. */
void esb_session_cgroup_forget(struct esb_cgroup *cg);

/* A connected socket to the holder of the session whose directory is
 * dir, or -1 with errno. */
int esb_session_connect(const char *dir);

/* The session's working dir, from its holder (WORKDIR): an O_PATH fd of
 * its tmpfs root, or -1 with errno. */
int esb_session_workdir_open(const char *dir);

/* The working dir's size limit (its tmpfs's), in bytes; 0: unknown. */
uint64_t esb_session_workdir_limit(int workdir);

/* Files beneath the working dir's fd, never by a path a run could change
 * into a way out (local_session_files.c says how). f->path, path: as
 * esb_file_path_ok; put replaces a file or a link, never a directory, and
 * is charged to the memory cgroup of the session of rec (a file its memory
 * cannot hold is an error naming its limit); get reads a regular file
 * only. Each 0, or -1 with err. */
int esb_session_workdir_put(int workdir, const struct esb_session_record *rec, const struct esb_file *f,
                            struct esb_error *err);
int esb_session_workdir_get(int workdir, const char *path, char **data, size_t *len, struct esb_error *err);
/* path NULL or "": the working dir itself. */
int esb_session_workdir_list(int workdir, const char *path, void (*fn)(const struct esb_session_entry *e, void *arg),
                             void *arg, struct esb_error *err);

#endif
