/* CPU limits as Kubernetes writes them: cores, whole ("2") or not ("0.5"),
 * or millicores ("500m"); kept as millicores (cores x 1000). */
#ifndef ESB_ENGINE_CPU_H
#define ESB_ENGINE_CPU_H

#include <stdint.h>

/* The most a limit may be: far above any host, far below overflow. */
#define ESB_CPU_MAX_MILLICORES (1024u * 1000u)

/* Parses text ("0.5", "2", "500m", "1.5") into millicores, rounded up to a
 * whole one. 0, or -1 when it is no positive quantity of cores at most
 * ESB_CPU_MAX_MILLICORES. */
int esb_cpu_parse(const char *text, uint64_t *millicores);

/* The same for a number of cores. */
int esb_cpu_from_cores(double cores, uint64_t *millicores);

#endif
