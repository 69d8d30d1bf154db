/* NULL-terminated vectors of owned strings (argv, env). */
#ifndef ESB_ENGINE_STRV_H
#define ESB_ENGINE_STRV_H

#include <stddef.h>

struct esb_strv {
  char **v;      /* NULL-terminated once anything was pushed; owned */
  size_t n, alloc;
};

#define ESB_STRV_INIT { 0 }

/* push appends a copy of s, take appends s itself (malloc'd; NULL counts as
 * out of memory). -1 on ENOMEM, the vector unchanged (a taken s is freed). */
int esb_strv_push(struct esb_strv *sv, const char *s);
int esb_strv_take(struct esb_strv *sv, char *s);
/* Appends the printf-style string, as take does. */
int esb_strv_pushf(struct esb_strv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the vector over (an empty one becomes {NULL}); NULL on ENOMEM. */
char **esb_strv_detach(struct esb_strv *sv);
void esb_strv_clear(struct esb_strv *sv);
/* The number of strings in a detached vector. */
size_t esb_strv_length(char *const *v);
/* Frees a detached vector. */
void esb_strv_free(char **v);

#endif
