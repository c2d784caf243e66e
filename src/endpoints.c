/* endpoints.c -- a worker's mirror of origins' breaker states
 * (endpoints.h). A uthash map keyed by origin, holding only origins not
 * closed or with a probe granted: a worker talking to a million healthy
 * origins holds nothing here. */
#include <stdlib.h>
#include <string.h>

#include "hookd/endpoints.h"
#include "hookd/mem.h"

#define uthash_malloc(sz) xmalloc(sz)
#include <uthash.h>

struct endpoint {
    char *origin;                   /* owned; the hash key */
    enum endpoint_state state;
    int64_t asked_ms;               /* monotonic: probe last asked for; 0 never */
    int64_t granted_ms;             /* monotonic: probe granted; 0 none */
    UT_hash_handle hh;
};

struct endpoints {
    struct endpoint *table;
};

struct endpoints *endpoints_new(void)
{
    return xcalloc(1, sizeof(struct endpoints));
}

static void drop(struct endpoints *eps, struct endpoint *e)
{
    HASH_DEL(eps->table, e);
    free(e->origin);
    free(e);
}

void endpoints_free(struct endpoints *eps)
{
    struct endpoint *e, *tmp;

    if (eps == NULL)
        return;
    HASH_ITER(hh, eps->table, e, tmp)
        drop(eps, e);
    free(eps);
}

static struct endpoint *find(const struct endpoints *eps, const char *origin, size_t olen)
{
    struct endpoint *e;

    HASH_FIND(hh, eps->table, origin, olen, e);
    return e;
}

static struct endpoint *get(struct endpoints *eps, const char *origin, size_t olen)
{
    struct endpoint *e = find(eps, origin, olen);

    if (e == NULL) {
        e = xcalloc(1, sizeof(*e));
        e->origin = xstrndup(origin, olen);
        HASH_ADD_KEYPTR(hh, eps->table, e->origin, olen, e);
    }
    return e;
}

/* One that says nothing any more leaves the map. */
static void tidy(struct endpoints *eps, struct endpoint *e)
{
    if (e->state == ENDPOINT_CLOSED && e->granted_ms == 0)
        drop(eps, e);
}

static int parse_ms(const char **p, const char *end, int64_t *out)
{
    int64_t v = 0;
    const char *s = *p;

    if (s >= end || *s != ' ')
        return -1;
    s++;
    if (s >= end || *s < '0' || *s > '9')
        return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    *p = s;
    *out = v;
    return 0;
}

int endpoints_parse_line(const char *line, size_t len, enum endpoint_state *state,
                         int64_t *since_ms, int64_t *due_ms)
{
    static const struct { const char *name; enum endpoint_state state; } names[] = {
        { "closed", ENDPOINT_CLOSED }, { "open", ENDPOINT_OPEN },
        { "half_open", ENDPOINT_HALF_OPEN }, { "disabled", ENDPOINT_DISABLED },
    };
    const char *end = line + len, *sp = memchr(line, ' ', len);

    if (sp == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        if ((size_t)(sp - line) == strlen(names[i].name) &&
            memcmp(line, names[i].name, (size_t)(sp - line)) == 0) {
            const char *p = sp;
            if (parse_ms(&p, end, since_ms) < 0 || parse_ms(&p, end, due_ms) < 0 || p != end)
                return -1;
            *state = names[i].state;
            return 0;
        }
    }
    return -1;
}

int endpoints_set(struct endpoints *eps, const char *origin, size_t olen, const char *line,
                  size_t llen)
{
    enum endpoint_state state;
    int64_t since, due;
    int rc = endpoints_parse_line(line, llen, &state, &since, &due);
    struct endpoint *e;

    if (rc < 0)
        state = ENDPOINT_CLOSED;
    e = get(eps, origin, olen);
    e->state = state;
    tidy(eps, e);
    return rc;
}

void endpoints_clear(struct endpoints *eps)
{
    struct endpoint *e, *tmp;

    HASH_ITER(hh, eps->table, e, tmp) {
        e->state = ENDPOINT_CLOSED;
        tidy(eps, e);
    }
}

enum endpoint_state endpoints_state(const struct endpoints *eps, const char *origin)
{
    struct endpoint *e = find(eps, origin, strlen(origin));

    return e ? e->state : ENDPOINT_CLOSED;
}

size_t endpoints_count(const struct endpoints *eps)
{
    struct endpoint *e, *tmp;
    size_t n = 0;

    HASH_ITER(hh, eps->table, e, tmp)
        n += e->state != ENDPOINT_CLOSED;
    return n;
}

void endpoints_grant_probe(struct endpoints *eps, const char *origin, size_t olen,
                           int64_t now_ms)
{
    get(eps, origin, olen)->granted_ms = now_ms > 0 ? now_ms : 1;
}

int endpoints_take_probe(struct endpoints *eps, const char *origin, int64_t now_ms)
{
    struct endpoint *e = find(eps, origin, strlen(origin));
    int fresh;

    if (e == NULL || e->granted_ms == 0)
        return 0;
    fresh = now_ms - e->granted_ms <= ENDPOINTS_GRANT_MS;
    e->granted_ms = 0;
    tidy(eps, e);
    return fresh;
}

int endpoints_pull_room(struct endpoints *eps, const char *origin, int room, int64_t mono_ms)
{
    struct endpoint *e = find(eps, origin, strlen(origin));

    if (e == NULL || e->state == ENDPOINT_CLOSED || e->state == ENDPOINT_DISABLED)
        return room;
    if (room <= 0 || (e->asked_ms != 0 && mono_ms - e->asked_ms < ENDPOINTS_ASK_MS))
        return 0;
    e->asked_ms = mono_ms;
    return 1;
}
