/* queue.c -- one function per Lua script (queue.h); the scripts themselves
 * are the files in src/lua/, embedded at build time (cmake/embed_lua.cmake).
 *
 * Why Lua: each move of a job between keys must be atomic, or a crash
 * between two commands loses or duplicates it. Redis runs a script to
 * completion with nothing interleaved, and with AOF the script's effects are
 * persisted together. Redis does not roll a script back, though, which is
 * why every script checks everything before its first write. Each opens
 * with a #!lua shebang, so Redis 7 refuses a write script as a whole while
 * it is at maxmemory rather than letting it fail halfway.
 *
 * Scripts are sent with EVAL every time rather than EVALSHA: Redis caches
 * the compiled function by its SHA anyway, and a Redis that restarted (and
 * forgot its script cache) needs no NOSCRIPT recovery path. The build strips
 * their comments, so what travels is the code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/mem.h"
#include "hookd/queue.h"
#include "hookd/timeutil.h"
#include "lua_scripts.h"

/* EVAL script: the head (nkeys keys, then fixed arguments; C strings),
 * then the tail (a caller's variable arguments, lengths in tail_lens or C
 * strings when it is NULL), with no intermediate copy of either. Fills
 * argv/argl (allocated when the small arrays do not suffice; the caller
 * frees them with argv_free). */
struct argv {
    const char **v;
    size_t *l;
    size_t n;
    const char *small_v[16];
    size_t small_l[16];
    char nk[16];
};

static void argv_build(struct argv *a, const char *script, int nkeys, const char **head,
                       size_t nhead, const char **tail, const size_t *tail_lens, size_t ntail)
{
    size_t argc = 3 + nhead + ntail, n = 0;

    a->v = a->small_v;
    a->l = a->small_l;
    if (argc > 16) {
        a->v = xmalloc(argc * sizeof(*a->v));
        a->l = xmalloc(argc * sizeof(*a->l));
    }
    snprintf(a->nk, sizeof(a->nk), "%d", nkeys);
    a->v[n++] = "EVAL";
    a->v[n++] = script;
    a->v[n++] = a->nk;
    for (size_t i = 0; i < nhead; i++)
        a->v[n++] = head[i];
    for (size_t i = 0; i < n; i++)
        a->l[i] = strlen(a->v[i]);
    for (size_t i = 0; i < ntail; i++, n++) {
        a->v[n] = tail[i];
        a->l[n] = tail_lens ? tail_lens[i] : strlen(tail[i]);
    }
    a->n = argc;
}

static void argv_free(struct argv *a)
{
    if (a->v != a->small_v) {
        free(a->v);
        free(a->l);
    }
}

static int eval(struct redis_conn *c, const char *script, int nkeys, const char **head,
                size_t nhead, const char **tail, const size_t *tail_lens, size_t ntail,
                redis_reply_cb cb, void *arg)
{
    struct argv a;
    int rc;

    argv_build(&a, script, nkeys, head, nhead, tail, tail_lens, ntail);
    rc = redis_command(c, cb, arg, (int)a.n, a.v, a.l);
    argv_free(&a);
    return rc;
}

/* The same, blocking; the reply (an error reply is NULL + err) is the
 * caller's to free with redis_reply_free. */
static struct redisReply *eval_sync(struct redis_sync *s, const char *script, int nkeys,
                                    const char **head, size_t nhead, const char **tail,
                                    const size_t *tail_lens, size_t ntail, struct hk_err *err)
{
    struct argv a;
    struct redisReply *r;

    argv_build(&a, script, nkeys, head, nhead, tail, tail_lens, ntail);
    r = redis_sync_command(s, (int)a.n, a.v, a.l, err);
    argv_free(&a);
    return r;
}

int queue_fetch(struct redis_conn *c, const struct keys *k, uint64_t base, int max,
                long probe_ms, const char *const *origins, const int *counts, size_t npull,
                redis_reply_cb cb, void *arg)
{
    char b[24], m[16], p[16], cnt[QUEUE_PULL_MAX][16];
    const char *args[12 + 2 * QUEUE_PULL_MAX] = { k->hb, k->queue, k->inflight, k->parked,
                                                  k->stats, k->backlog, k->endpoints,
                                                  k->endpoints_gen, b, m, k->endpoint, p };
    size_t n = 12;

    snprintf(b, sizeof(b), "%llu", (unsigned long long)base);
    snprintf(m, sizeof(m), "%d", max);
    snprintf(p, sizeof(p), "%ld", probe_ms);
    for (size_t i = 0; i < npull && i < QUEUE_PULL_MAX; i++) {
        snprintf(cnt[i], sizeof(cnt[i]), "%d", counts[i]);
        args[n++] = origins[i];
        args[n++] = cnt[i];
    }
    return eval(c, queue_lua_fetch, 8, args, n, NULL, NULL, 0, cb, arg);
}

int queue_wait(struct redis_conn *c, const struct keys *k, double timeout_s,
               redis_reply_cb cb, void *arg)
{
    char t[32];
    /* Source and destination the same, right to right: Redis pops the
     * oldest job and pushes it back where it was, so the queue is as it
     * was. It is a blocking "wait until the queue has a job" that moves
     * nothing: a job is only ever taken by FETCH, which checks that the
     * worker is registered. */
    const char *argv[] = { "BLMOVE", k->queue, k->queue, "RIGHT", "RIGHT", t };

    snprintf(t, sizeof(t), "%.3f", timeout_s);
    return redis_command(c, cb, arg, 6, argv, NULL);
}

int queue_server_info(struct redis_conn *c, redis_reply_cb cb, void *arg)
{
    const char *argv[] = { "INFO", "server" };

    return redis_command(c, cb, arg, 2, argv, NULL);
}

int queue_wait_replicas(struct redis_conn *c, int n, long timeout_ms, redis_reply_cb cb,
                        void *arg)
{
    char num[16], t[24];
    const char *argv[] = { "WAIT", num, t };

    snprintf(num, sizeof(num), "%d", n);
    snprintf(t, sizeof(t), "%ld", timeout_ms);
    return redis_command(c, cb, arg, 3, argv, NULL);
}

int queue_record(struct redis_conn *c, const struct keys *k, size_t dead_max,
                 const char **args, const size_t *lens, size_t nargs, redis_reply_cb cb,
                 void *arg)
{
    char m[24];
    const char *head[] = { k->inflight, k->retry, k->dead, k->stats, k->dead_aside,
                           k->parked, k->queue, m, k->wid, k->batch, k->seen };

    snprintf(m, sizeof(m), "%zu", dead_max);
    return eval(c, queue_lua_record, 7, head, 11, args, lens, nargs, cb, arg);
}

int queue_accept(struct redis_conn *c, const struct keys *k, long window_ms,
                 const char **pairs, size_t npairs, redis_reply_cb cb, void *arg)
{
    char w[24];
    const char *head[] = { k->inflight, k->stats, k->seen, k->wid, w };

    snprintf(w, sizeof(w), "%ld", window_ms);
    return eval(c, queue_lua_accept, 2, head, 5, pairs, NULL, npairs, cb, arg);
}

int queue_throttle(struct redis_conn *c, const struct keys *k, const char **args, size_t nargs,
                   redis_reply_cb cb, void *arg)
{
    const char *head[] = { k->throttled, k->rate };

    return eval(c, queue_lua_throttle, 1, head, 2, args, NULL, nargs, cb, arg);
}

int queue_health(struct redis_conn *c, const struct keys *k, const struct queue_breaker *b,
                 const char *ops_url, const char **args, const size_t *lens, size_t nargs,
                 redis_reply_cb cb, void *arg)
{
    char v[8][24];
    const char *head[] = { k->endpoints, k->endpoints_gen, k->events, k->queue, k->stats,
                           k->parked, k->endpoint, v[0], v[1], v[2], v[3], v[4], v[5], v[6],
                           v[7], ops_url ? ops_url : "" };

    snprintf(v[0], sizeof(v[0]), "%d", b->on ? 1 : 0);
    snprintf(v[1], sizeof(v[1]), "%ld", b->window_ms);
    snprintf(v[2], sizeof(v[2]), "%d", b->min_requests);
    snprintf(v[3], sizeof(v[3]), "%d", b->threshold_pct);
    snprintf(v[4], sizeof(v[4]), "%ld", b->cooldown_ms);
    snprintf(v[5], sizeof(v[5]), "%ld", b->cooldown_max_ms);
    snprintf(v[6], sizeof(v[6]), "%ld", b->disable_after_ms);
    snprintf(v[7], sizeof(v[7]), "%zu", b->events_max);
    return eval(c, queue_lua_health, 6, head, 16, args, lens, nargs, cb, arg);
}

int queue_endpoints(struct redis_conn *c, const struct keys *k, redis_reply_cb cb, void *arg)
{
    const char *args[] = { k->endpoints, k->endpoints_gen };

    return eval(c, queue_lua_endpoints, 2, args, 2, NULL, NULL, 0, cb, arg);
}

int queue_promote(struct redis_conn *c, const struct keys *k, int limit,
                  redis_reply_cb cb, void *arg)
{
    char n[16];
    const char *args[] = { k->retry, k->queue, k->stats, k->backlog, n };

    snprintf(n, sizeof(n), "%d", limit);
    return eval(c, queue_lua_promote, 4, args, 5, NULL, NULL, 0, cb, arg);
}

int queue_log_attempt(struct redis_conn *c, const struct keys *k, size_t maxlen,
                      const char **fields, const size_t *lens, size_t nfields,
                      redis_reply_cb cb, void *arg)
{
    const char **a = xmalloc((nfields + 6) * sizeof(*a));
    size_t *l = xmalloc((nfields + 6) * sizeof(*l));
    char m[24];
    int rc;

    snprintf(m, sizeof(m), "%zu", maxlen);
    a[0] = "XADD";
    a[1] = k->attempts;
    a[2] = "MAXLEN";
    a[3] = "~";
    a[4] = m;
    a[5] = "*";
    for (int i = 0; i < 6; i++)
        l[i] = strlen(a[i]);
    memcpy(a + 6, fields, nfields * sizeof(*a));
    memcpy(l + 6, lens, nfields * sizeof(*l));
    rc = redis_command(c, cb, arg, (int)nfields + 6, a, l);
    free(a);
    free(l);
    return rc;
}

int queue_release_range(struct redis_conn *c, const struct keys *k, uint64_t lo,
                        uint64_t hi, redis_reply_cb cb, void *arg)
{
    char l[24], h[24];
    const char *args[] = { k->inflight, k->queue, k->stats, k->backlog, l, h };

    snprintf(l, sizeof(l), "%llu", (unsigned long long)lo);
    snprintf(h, sizeof(h), "%llu", (unsigned long long)hi);
    return eval(c, queue_lua_release, 4, args, 6, NULL, NULL, 0, cb, arg);
}

int queue_heartbeat(struct redis_conn *c, const struct keys *k, long ttl_ms,
                    const char *info, redis_reply_cb cb, void *arg)
{
    char t[24], now[24];
    const char *args[] = { k->hb, k->workers, k->wid, t, info, now };

    snprintf(t, sizeof(t), "%ld", ttl_ms);
    snprintf(now, sizeof(now), "%lld", (long long)time_now_ms());
    return eval(c, queue_lua_heartbeat, 2, args, 6, NULL, NULL, 0, cb, arg);
}

/* RECLAIM's arguments: prefix, wid ('' = reap), mode, poison_after,
 * dead_max, now; filled into the caller's buffers. */
struct reclaim_args {
    char poison[16], dead_max[24], now[TIME_ISO_LEN + 1];
    const char *v[6];
};

static void reclaim_args(struct reclaim_args *a, const char *prefix, const char *wid,
                         const struct queue_reclaim *r)
{
    snprintf(a->poison, sizeof(a->poison), "%d", r->poison_after);
    snprintf(a->dead_max, sizeof(a->dead_max), "%zu", r->dead_max);
    time_format_iso(time_now_ms(), a->now);
    a->v[0] = prefix;
    a->v[1] = wid;
    a->v[2] = r->crashed ? "crashed" : "clean";
    a->v[3] = a->poison;
    a->v[4] = a->dead_max;
    a->v[5] = a->now;
}

int queue_reap(struct redis_conn *c, const struct keys *k, const struct queue_reclaim *r,
               redis_reply_cb cb, void *arg)
{
    struct queue_reclaim crashed = *r;
    struct reclaim_args a;

    crashed.crashed = 1;        /* a worker whose heartbeat expired died */
    reclaim_args(&a, k->prefix, "", &crashed);
    return eval(c, queue_lua_reclaim, 0, a.v, 6, NULL, NULL, 0, cb, arg);
}

int queue_reclaim_async(struct redis_conn *c, const struct keys *k,
                        const struct queue_reclaim *r, redis_reply_cb cb, void *arg)
{
    struct reclaim_args a;

    reclaim_args(&a, k->prefix, k->wid, r);
    return eval(c, queue_lua_reclaim, 0, a.v, 6, NULL, NULL, 0, cb, arg);
}

int queue_reclaim_sync(struct redis_sync *s, const char *prefix, const char *wid,
                       const struct queue_reclaim *r, long long *requeued, long long *dead,
                       struct hk_err *err)
{
    struct reclaim_args a;
    struct redisReply *reply;

    reclaim_args(&a, prefix, wid, r);
    if ((reply = eval_sync(s, queue_lua_reclaim, 0, a.v, 6, NULL, NULL, 0, err)) == NULL)
        return HK_EREDIS;
    *requeued = redis_reply_integer(redis_reply_element(reply, 0));
    *dead = redis_reply_integer(redis_reply_element(reply, 1));
    redis_reply_free(reply);
    return 0;
}

/* A blocking script call whose reply is an integer. */
static long long sync_int(struct redis_sync *s, const char *script, int nkeys,
                          const char **head, size_t nhead, const char **tail,
                          const size_t *tail_lens, size_t ntail, struct hk_err *err)
{
    struct redisReply *r = eval_sync(s, script, nkeys, head, nhead, tail, tail_lens, ntail, err);
    long long n;

    if (r == NULL)
        return HK_EREDIS;
    n = redis_reply_integer(r);
    redis_reply_free(r);
    return n;
}

long long queue_dlq_move(struct redis_sync *s, const struct keys *k, const char *counter,
                         const char **triples, const size_t *lens, size_t ntriples,
                         struct hk_err *err)
{
    const char *head[] = { k->dead, k->queue, k->dead_aside, k->stats, counter };

    return sync_int(s, queue_lua_dlq_move, 4, head, 5, triples, lens, 3 * ntriples, err);
}

long long queue_dlq_purge_all(struct redis_sync *s, const struct keys *k,
                              struct hk_err *err)
{
    const char *head[] = { k->dead, k->dead_aside, k->stats };

    return sync_int(s, queue_lua_dlq_purge_all, 3, head, 3, NULL, NULL, 0, err);
}

/* A read-only script of three keys answering n integers, into v. */
static int read_ints(struct redis_sync *s, const char *script, const char *const head[3],
                     long long *v, size_t n, struct hk_err *err)
{
    struct redisReply *r = eval_sync(s, script, 3, (const char **)head, 3, NULL, NULL, 0, err);

    if (r == NULL)
        return HK_EREDIS;
    for (size_t i = 0; i < n; i++)
        v[i] = redis_reply_integer(redis_reply_element(r, i));
    redis_reply_free(r);
    return 0;
}

int queue_backlog_sync(struct redis_sync *s, const struct keys *k,
                       struct backlog_reading *out, struct hk_err *err)
{
    const char *head[] = { k->queue, k->backlog, k->retry };
    long long v[6];

    if (read_ints(s, queue_lua_backlog, head, v, 6, err) < 0)
        return HK_EREDIS;
    *out = (struct backlog_reading){ .len = v[0], .front = v[1], .front_since_ms = v[2],
                                     .left_taken = v[3], .retry_due_ms = v[4], .now_ms = v[5] };
    return 0;
}

/* A state name from a reply element, into out (QUEUE_STATE_MAX bytes). */
static void state_copy(const struct redisReply *r, size_t i, char out[QUEUE_STATE_MAX])
{
    size_t len = 0;
    const char *v = redis_reply_str(redis_reply_element(r, i), &len);

    snprintf(out, QUEUE_STATE_MAX, "%.*s", v ? (int)len : 1, v ? v : "?");
}

int queue_endpoint_set(struct redis_sync *s, const struct keys *k,
                       const struct queue_endpoint_set *set, char was[QUEUE_STATE_MAX],
                       char now[QUEUE_STATE_MAX], struct hk_err *err)
{
    char max[24], window[24];
    const char *head[] = { k->endpoints, k->endpoints_gen, k->events, k->queue, k->stats,
                           k->parked, k->endpoint, set->enable ? "enable" : "disable",
                           set->origin, set->origin_json, max,
                           set->ops_url ? set->ops_url : "", window };
    struct redisReply *r;

    snprintf(max, sizeof(max), "%zu", set->events_max);
    snprintf(window, sizeof(window), "%ld", set->window_ms);
    if ((r = eval_sync(s, queue_lua_endpoint_set, 6, head, 13, NULL, NULL, 0, err)) == NULL)
        return HK_EREDIS;
    state_copy(r, 0, was);
    state_copy(r, 1, now);
    redis_reply_free(r);
    return 0;
}

int queue_endpoint_counts_sync(struct redis_sync *s, const struct keys *k,
                               struct queue_endpoint_counts *out, struct hk_err *err)
{
    const char *head[] = { k->endpoints, k->throttled, k->parked };
    long long v[6];

    if (read_ints(s, queue_lua_endpoint_counts, head, v, 6, err) < 0)
        return HK_EREDIS;
    *out = (struct queue_endpoint_counts){ .open = v[0], .half_open = v[1], .disabled = v[2],
                                           .throttled = v[3], .parked = v[4],
                                           .complete = (int)v[5] };
    return 0;
}
