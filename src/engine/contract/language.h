/* A language a request may name, as a policy lists them. Below both the
 * policy, which makes the list, and the codec, which writes it out as JSON,
 * so that neither has to include the other for it. */
#ifndef ESB_ENGINE_LANGUAGE_H
#define ESB_ENGINE_LANGUAGE_H

/* image (k8s) and file (where the code goes) may be NULL. */
struct esb_language {
  char *name, *image, *file;
};

#endif
