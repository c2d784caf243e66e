/* mem.h -- allocation that never returns NULL.
 *
 * hookd does not try to limp on after malloc fails: every job a worker holds
 * is also recorded in Redis (its in-flight hash), so the cheapest correct
 * reaction to out-of-memory is to abort, let the supervisor respawn the
 * worker and let recovery put the jobs back on the queue. */
#ifndef HOOKD_MEM_H
#define HOOKD_MEM_H

#include <stddef.h>

void *xmalloc(size_t size);                 /* caller frees with free() */
void *xcalloc(size_t n, size_t size);       /* caller frees with free() */
void *xrealloc(void *ptr, size_t size);     /* caller frees with free() */
char *xstrdup(const char *s);               /* caller frees with free() */
char *xstrndup(const char *s, size_t n);    /* NUL-terminated copy; caller frees */
/* The same end for an allocation a library made and reported failed. */
void mem_oom(size_t size) __attribute__((noreturn));

#endif
