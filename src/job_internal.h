/* job_internal.h -- what the job*.c files share with each other and with
 * nobody else (the job codec's public face is include/hookd/job.h). Each
 * section is one file's exports. */
#ifndef HOOKD_JOB_INTERNAL_H
#define HOOKD_JOB_INTERNAL_H

#include <stddef.h>

/* ---- job_mpcheck.c: msgpack bytes checked before msgpack-c sees them ---- */

/* The size of the msgpack value at p (at most len bytes), or -1 when it is
 * malformed, truncated, declares more elements than the bytes left can
 * hold, or nests deeper than max_depth (depth is the caller's level; pass
 * 0). Linear in len; allocates nothing. */
long job_mp_check(const unsigned char *p, size_t len, int depth, int max_depth);

#endif
