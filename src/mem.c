/* mem.c -- allocation wrappers that abort on failure (see mem.h for why). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/mem.h"

void mem_oom(size_t size)
{
    /* No logging module here on purpose: it may itself need memory. */
    fprintf(stderr, "hookd: out of memory allocating %zu bytes, aborting\n", size);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        mem_oom(size);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        mem_oom(n * size);
    return p;
}

void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        mem_oom(size);
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}
