/* hosts.c -- per-origin admission (see hosts.h for the rules).
 *
 * The table is a uthash hash map (Debian's uthash-dev, header only) keyed by
 * origin string. Entries exist only while an origin has requests running or
 * waiting, so a worker that has talked to a million origins holds state for
 * the few it is talking to now. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/hosts.h"
#include "hookd/mem.h"

/* Allocation failure aborts, like everywhere else in hookd. */
#define uthash_malloc(sz) xmalloc(sz)
#include <uthash.h>

/* One HTTP/2 connection of an origin: hosts_done's h2_conn, and when an
 * answer last came over it. */
struct h2_conn {
    long id;
    int64_t seen_ms;
};

struct host {
    char *origin;                   /* owned; the hash key */
    int running;                    /* admitted, not done */
    struct h2_conn *h2_conns;       /* owned; the HTTP/2 connections it answered
                                       on lately, distinct, at most max_per_host;
                                       none: HTTP/1.1 (or not known yet) */
    int nh2_conns;                  /* entries in h2_conns */
    struct hosts_waiter *head, *tail;  /* waiting, FIFO */
    int nwaiting;
    int64_t progress_ms;            /* last request done (or entry created) */
    long latency_ms;                /* moving average of request time, 0 = none yet */
    UT_hash_handle hh;
};

struct hosts {
    struct host *table;             /* uthash head */
    int max_per_host;
    char *parked[HOSTS_PARKED_MAX]; /* owned; origins with jobs parked in Redis */
    size_t nparked;
};

struct hosts *hosts_new(int max_per_host)
{
    struct hosts *hs = xcalloc(1, sizeof(*hs));

    hs->max_per_host = max_per_host > 0 ? max_per_host : 1;
    return hs;
}

static void free_host(struct hosts *hs, struct host *h)
{
    HASH_DEL(hs->table, h);
    free(h->origin);
    free(h->h2_conns);
    free(h);
}

static void clear_parked(struct hosts *hs)
{
    for (size_t i = 0; i < hs->nparked; i++)
        free(hs->parked[i]);
    hs->nparked = 0;
}

void hosts_free(struct hosts *hs)
{
    struct host *h, *tmp;

    if (hs == NULL)
        return;
    HASH_ITER(hh, hs->table, h, tmp)
        free_host(hs, h);
    clear_parked(hs);
    free(hs);
}

/* An origin that answers over HTTP/2 takes streams, not connections: up to
 * max_per_host connections of HOSTS_H2_STREAMS each. The limit follows the
 * connections answering lately, and lets as many more requests run as there
 * are such connections, each of which may open one: the connections double
 * per round trip until the requests fit. Raised to every connection at
 * once, libcurl 7.88 opened a new connection for nearly every request
 * beyond the open connections' streams (measured: 120 requests at once to
 * one origin, 21 connections; 200, 64): 64 TLS handshakes per worker for
 * an origin 4 to 8 connections serve. Only connections heard from lately
 * count: servers close HTTP/2 connections every so many requests (nginx:
 * 1,000) and hookd's next one has a new port; counting every port ever
 * seen would climb back to max_per_host. */
static int limit(const struct hosts *hs, const struct host *h)
{
    int n = h->nh2_conns, more;

    if (n == 0)
        return hs->max_per_host;
    more = hs->max_per_host - n < n ? hs->max_per_host - n : n;
    return n * HOSTS_H2_STREAMS + more;
}

/* How long a connection counts without an answer over it: one with
 * streams running answers about once per latency. */
static int64_t h2_quiet_ms(const struct host *h)
{
    int64_t w = 4 * (int64_t)h->latency_ms;

    return w > HOSTS_STALL_MS ? w : HOSTS_STALL_MS;
}

/* Note that h answered over HTTP/2 connection conn at now, forgetting the
 * connections that have been quiet too long (closed, or idle). */
static void saw_h2_conn(const struct hosts *hs, struct host *h, long conn, int64_t now)
{
    int64_t quiet = h2_quiet_ms(h);
    int found = 0, kept = 0;

    for (int i = 0; i < h->nh2_conns; i++) {
        struct h2_conn c = h->h2_conns[i];
        if (c.id == conn) {
            c.seen_ms = now;
            found = 1;
        } else if (now - c.seen_ms > quiet) {
            continue;
        }
        h->h2_conns[kept++] = c;
    }
    h->nh2_conns = kept;
    if (found || kept >= hs->max_per_host)
        return;
    h->h2_conns = xrealloc(h->h2_conns, (size_t)(kept + 1) * sizeof(*h->h2_conns));
    h->h2_conns[kept] = (struct h2_conn){ .id = conn, .seen_ms = now };
    h->nh2_conns = kept + 1;
}

static int stalled(const struct hosts *hs, const struct host *h, int64_t now)
{
    return h->running >= limit(hs, h) && now - h->progress_ms >= HOSTS_STALL_MS;
}

/* How many jobs may wait in memory: as many as the origin gets through in
 * HOSTS_WAIT_MS at its measured pace (limit requests per latency), so a
 * fast origin queues freely and a slow one keeps a few; one that stopped
 * answering keeps none. Before its first answer an origin's pace is
 * unknown and it may queue until it counts as stalled. */
static long wait_cap(const struct hosts *hs, const struct host *h, int64_t now)
{
    if (stalled(hs, h, now))
        return 0;
    if (h->latency_ms == 0)
        return LONG_MAX;
    return (long)limit(hs, h) * HOSTS_WAIT_MS / h->latency_ms;
}

static struct host *find(struct hosts *hs, const char *origin)
{
    struct host *h = NULL;

    HASH_FIND_STR(hs->table, origin, h);
    return h;
}

enum hosts_verdict hosts_admit(struct hosts *hs, const char *origin, struct hosts_waiter *w,
                               int64_t now_ms, struct host **hp)
{
    struct host *h = find(hs, origin);

    if (h == NULL) {
        h = xcalloc(1, sizeof(*h));
        h->origin = xstrdup(origin);
        h->progress_ms = now_ms;
        HASH_ADD_KEYPTR(hh, hs->table, h->origin, strlen(h->origin), h);
    }
    *hp = h;
    if (h->running < limit(hs, h) && h->nwaiting == 0) {
        h->running++;
        return HOSTS_GO;
    }
    if (h->nwaiting >= wait_cap(hs, h, now_ms))
        return HOSTS_PARK;
    w->next = NULL;
    if (h->tail != NULL)
        h->tail->next = w;
    else
        h->head = w;
    h->tail = w;
    h->nwaiting++;
    return HOSTS_WAIT;
}

static struct hosts_waiter *pop(struct host *h)
{
    struct hosts_waiter *w = h->head;

    if (w != NULL) {
        h->head = w->next;
        if (h->head == NULL)
            h->tail = NULL;
        h->nwaiting--;
        w->next = NULL;
    }
    return w;
}

struct hosts_waiter *hosts_done(struct hosts *hs, struct host *h, long latency_ms,
                                long h2_conn, int64_t now_ms)
{
    struct hosts_waiter *w = NULL;

    h->running--;
    h->progress_ms = now_ms;
    if (latency_ms >= 0) {
        if (latency_ms < 1)
            latency_ms = 1;
        /* 1/8 weight for the newest, as TCP's smoothed RTT */
        h->latency_ms = h->latency_ms ? (h->latency_ms * 7 + latency_ms) / 8 : latency_ms;
        if (h->latency_ms < 1)
            h->latency_ms = 1;
    }
    if (h2_conn != 0)
        saw_h2_conn(hs, h, h2_conn, now_ms);
    /* Every slot free is filled, not only the one this request left: when
     * the limit has just risen (connections to streams, or more
     * connections), handing back one waiter per answer would keep the
     * origin at its old limit forever. */
    struct hosts_waiter *first = NULL, **link = &first;
    while (h->running < limit(hs, h) && (w = pop(h)) != NULL) {
        h->running++;
        *link = w;
        link = &w->next;
    }
    if (h->running == 0 && h->nwaiting == 0)
        free_host(hs, h);
    return first;
}

struct hosts_waiter *hosts_take_stalled(struct hosts *hs, struct host *h, int64_t now_ms)
{
    struct hosts_waiter *w;

    if (!stalled(hs, h, now_ms))
        return NULL;
    w = pop(h);
    if (h->running == 0 && h->nwaiting == 0)
        free_host(hs, h);
    return w;
}

struct hosts_waiter *hosts_take_any_stalled(struct hosts *hs, int64_t now_ms)
{
    struct host *h, *tmp;

    HASH_ITER(hh, hs->table, h, tmp) {
        struct hosts_waiter *w;
        if (h->nwaiting > 0 && (w = hosts_take_stalled(hs, h, now_ms)) != NULL)
            return w;
    }
    return NULL;
}

struct hosts_waiter *hosts_take_any_waiting(struct hosts *hs)
{
    struct host *h, *tmp;

    HASH_ITER(hh, hs->table, h, tmp) {
        struct hosts_waiter *w = pop(h);
        if (h->running == 0 && h->nwaiting == 0)
            free_host(hs, h);
        if (w != NULL)
            return w;
    }
    return NULL;
}

int hosts_room(struct hosts *hs, const char *origin, int64_t now_ms)
{
    struct host *h = find(hs, origin);
    int room;

    if (h == NULL)
        return hs->max_per_host;
    if (stalled(hs, h, now_ms))
        return 0;
    room = limit(hs, h) - h->running - h->nwaiting;
    return room > 0 ? room : 0;
}

void hosts_set_parked(struct hosts *hs, const char *const *origins, const size_t *lens,
                      size_t n)
{
    clear_parked(hs);
    for (size_t i = 0; i < n && i < HOSTS_PARKED_MAX; i++)
        hs->parked[hs->nparked++] = xstrndup(origins[i], lens[i]);
}

size_t hosts_pull_plan(struct hosts *hs, int budget, int64_t now_ms, hosts_room_fn *fn,
                       void *arg, const char **origins, int *counts, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < hs->nparked && n < max && budget > 0; i++) {
        int room = hosts_room(hs, hs->parked[i], now_ms);
        if (fn != NULL)
            room = fn(arg, hs->parked[i], room);
        if (room <= 0)
            continue;
        origins[n] = hs->parked[i];
        counts[n] = room < budget ? room : budget;
        budget -= counts[n];
        n++;
    }
    return n;
}

size_t hosts_count(const struct hosts *hs)
{
    return HASH_COUNT(hs->table);
}
