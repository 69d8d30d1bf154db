#include "engine/strv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int esb_strv_take(struct esb_strv *sv, char *s) {
  if (!s)
    return -1;
  if (sv->n + 2 > sv->alloc) {
    size_t want = sv->alloc ? sv->alloc * 2 : 8;
    char **p = realloc(sv->v, want * sizeof *p);
    if (!p) {
      free(s);
      return -1;
    }
    sv->v = p;
    sv->alloc = want;
  }
  sv->v[sv->n++] = s;
  sv->v[sv->n] = NULL;
  return 0;
}

int esb_strv_push(struct esb_strv *sv, const char *s) {
  return esb_strv_take(sv, strdup(s));
}

char **esb_strv_detach(struct esb_strv *sv) {
  char **v = sv->v;
  if (!v)
    v = calloc(1, sizeof *v);
  *sv = (struct esb_strv)ESB_STRV_INIT;
  return v;
}

void esb_strv_clear(struct esb_strv *sv) {
  esb_strv_free(sv->v);
  *sv = (struct esb_strv)ESB_STRV_INIT;
}

void esb_strv_free(char **v) {
  if (!v)
    return;
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}

size_t esb_strv_length(char *const *v) {
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

int esb_strv_pushf(struct esb_strv *sv, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  return n < 0 ? -1 : esb_strv_take(sv, s);
}
