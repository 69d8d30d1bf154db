/* Kubernetes resource quantities ("500m", "1.5Gi", "64k", "1e3"): the one
 * grammar of the sizes, counts and CPU amounts the engine reads from flags
 * and daemon options. Policies read theirs with lua/echo_sandbox/quantity.lua,
 * which keeps to the same grammar: both are tested against one table of
 * cases, spec/support/quantities.txt.
 *
 * A quantity is a non-negative decimal number (digits with at most one
 * point, at least one digit after it: "2", "1.5", ".5") followed by at most
 * one suffix: binary Ki Mi Gi Ti Pi Ei (powers of 1024), decimal m k M G T
 * P E, or a decimal exponent e3 / E-2. No sign, no space, no hex, inf or
 * nan. */
#ifndef ESB_ENGINE_QUANTITY_H
#define ESB_ENGINE_QUANTITY_H

#include <stdint.h>

/* The value of text: 0, or -1 when it is not a quantity (or not finite). */
int esb_quantity_parse(const char *text, double *value);

/* A plain decimal number: a quantity without its suffix (seconds, say,
 * which a size's suffixes do not fit): 0, or -1. */
int esb_quantity_number(const char *text, double *value);

/* A whole number from min to max (bytes, counts): 0, or -1 when text is not
 * a quantity, not whole ("1.5" bytes) or out of range. */
int esb_quantity_whole(const char *text, uint64_t min, uint64_t max, uint64_t *value);

#endif
