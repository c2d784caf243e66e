/* queue.h -- the Lua scripts that move jobs between hookd's Redis keys
 * (keys.h), one function per script. Each script's contract (KEYS, ARGV,
 * reply, what it moves, what it refuses) opens its file in src/lua/; the
 * limits below are the scripts' own, and the script tests check that the two
 * agree (tests/integration/test_scripts.py).
 *
 * Every script checks every key's type and every argument before its first
 * write, so an error reply means Redis is unchanged.
 *
 * The async functions follow the callback rule in redis.h: an error return
 * means cb never fires, else it fires once with the reply or NULL. */
#ifndef HOOKD_QUEUE_H
#define HOOKD_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "hookd/backlog.h"
#include "hookd/keys.h"
#include "hookd/redis.h"

#define QUEUE_FETCH_MAX 10000       /* jobs per FETCH (and fetch_batch's maximum) */
#define QUEUE_FETCH_BYTES_MAX (64 * 1024 * 1024) /* job bytes FETCH takes from the
                                                    queue at once, one job at least */
#define QUEUE_PULL_MAX 32           /* parked origins pulled from per FETCH */
#define QUEUE_RECORD_MAX 500        /* outcomes per RECORD */
#define QUEUE_ACCEPT_MAX 500        /* id checks per ACCEPT */
#define QUEUE_THROTTLE_MAX 200      /* origins per THROTTLE */
#define QUEUE_THROTTLE_COUNT_MAX 10000  /* slots one origin asks for per THROTTLE */
#define QUEUE_PROMOTE_MAX 4000      /* due retries per PROMOTE */
#define QUEUE_DLQ_MOVE_MAX 200      /* dead entries per DLQ_MOVE */
#define QUEUE_POISON_MAX 100        /* largest poison_after */
#define QUEUE_HEALTH_MAX 500        /* origins per HEALTH */

/* FETCH: move up to max jobs (first counts[i] parked jobs of origins[i],
 * then from P:queue) into the worker's in-flight hash under seqs base+1 ..
 * base+n, atomically, if the worker is registered (its heartbeat key
 * exists; else the error reply QUEUE_NOT_REGISTERED). Reply: [the n jobs in
 * seq order, up to 32 origins that still have parked jobs (least recently
 * served first), origin/reason pairs for parked lists left untouched]. */
#define QUEUE_NOT_REGISTERED "hookd: FETCH: not registered"
int queue_fetch(struct redis_conn *c, const struct keys *k, uint64_t base, int max,
                long probe_ms, const char *const *origins, const int *counts, size_t npull,
                redis_reply_cb cb, void *arg);

/* The breaker's settings, as HEALTH takes them (src/lua/health.lua). */
struct queue_breaker {
    int on;
    long window_ms;
    int min_requests;
    int threshold_pct;
    long cooldown_ms, cooldown_max_ms;
    long disable_after_ms;          /* 0 = never */
    size_t events_max;
};

/* HEALTH: count attempts per origin and move breakers; args are groups of
 * five (origin, origin as a JSON string, answers that were no failure,
 * failures, probe '0'/'1'/'2'), at most QUEUE_HEALTH_MAX groups. ops_url
 * may be NULL. Reply: [gen, origin/line pairs, origin/reason pairs of
 * records left uncounted]. */
int queue_health(struct redis_conn *c, const struct keys *k, const struct queue_breaker *b,
                 const char *ops_url, const char **args, const size_t *lens, size_t nargs,
                 redis_reply_cb cb, void *arg);

/* ENDPOINTS: [gen, origin/line pairs of every origin not closed]. */
int queue_endpoints(struct redis_conn *c, const struct keys *k, redis_reply_cb cb, void *arg);

/* Block up to timeout_s until P:queue holds a job, moving nothing (BLMOVE
 * from the queue to itself); the next queue_fetch takes it. */
int queue_wait(struct redis_conn *c, const struct keys *k, double timeout_s,
               redis_reply_cb cb, void *arg);

/* INFO server: the reply's run_id names the server process (it changes
 * when Redis restarts or another server takes its place). */
int queue_server_info(struct redis_conn *c, redis_reply_cb cb, void *arg);

/* WAIT until n replicas have every write this connection made, up to
 * timeout_ms. Reply: the replicas that have them (an integer). */
int queue_wait_replicas(struct redis_conn *c, int n, long timeout_ms, redis_reply_cb cb,
                        void *arg);

/* RECORD a batch of outcomes: args are groups of four (kind, seq, a, b; see
 * src/lua/record.lua), at most QUEUE_RECORD_MAX groups. Reply: [applied,
 * seq/reason pairs of outcomes refused and left in flight]. */
int queue_record(struct redis_conn *c, const struct keys *k, size_t dead_max,
                 const char **args, const size_t *lens, size_t nargs, redis_reply_cb cb,
                 void *arg);

/* ACCEPT ids for dedupe_window: pairs are seq, key (dedupe.h), at most
 * QUEUE_ACCEPT_MAX pairs. Reply: one integer per pair, 0 new, 1 duplicate
 * (recorded), 2 no longer in flight here, 3 the key holds another type. */
int queue_accept(struct redis_conn *c, const struct keys *k, long window_ms,
                 const char **pairs, size_t npairs, redis_reply_cb cb, void *arg);

/* THROTTLE: slots for rate-limited origins (src/lua/throttle.lua). args
 * are triples origin, interval (us), count (1..QUEUE_THROTTLE_COUNT_MAX), at
 * most QUEUE_THROTTLE_MAX triples. Reply: per triple {status (0, or 1: its
 * record is clobbered), granted, delay of the first slot (us from now),
 * interval used (us), retry (us from now; 0 when all were granted)}. */
int queue_throttle(struct redis_conn *c, const struct keys *k, const char **args, size_t nargs,
                   redis_reply_cb cb, void *arg);

/* PROMOTE due retries (at most limit) to the queue. Reply: [moved, ms until
 * the next one is due or -1]. */
int queue_promote(struct redis_conn *c, const struct keys *k, int limit,
                  redis_reply_cb cb, void *arg);

/* XADD one attempt (field/value pairs) to P:attempts, capped near maxlen. */
int queue_log_attempt(struct redis_conn *c, const struct keys *k, size_t maxlen,
                      const char **fields, const size_t *lens, size_t nfields,
                      redis_reply_cb cb, void *arg);

/* RELEASE seqs lo..hi back to the queue (those still in flight): a fetch
 * whose reply was lost, so its jobs do not sit unseen. */
int queue_release_range(struct redis_conn *c, const struct keys *k, uint64_t lo,
                        uint64_t hi, redis_reply_cb cb, void *arg);

/* HEARTBEAT: refresh the heartbeat (TTL ttl_ms) and the registration. */
int queue_heartbeat(struct redis_conn *c, const struct keys *k, long ttl_ms,
                    const char *info, redis_reply_cb cb, void *arg);

/* RECLAIM: requeue a worker's jobs and forget the worker. crashed: it died
 * with them in flight, so each job's crash count goes up and a job that
 * reaches poison_after is dead-lettered as worker_crashed instead. */
struct queue_reclaim {
    int crashed;                /* 1: the worker died; 0: it hands its jobs back */
    int poison_after;           /* 1..QUEUE_POISON_MAX */
    size_t dead_max;
};
/* Reply of the async forms: [requeued, dead, reasons workers were skipped]. */
int queue_reclaim_async(struct redis_conn *c, const struct keys *k,
                        const struct queue_reclaim *r, redis_reply_cb cb, void *arg);
/* Every registered worker whose heartbeat expired (always crashed). */
int queue_reap(struct redis_conn *c, const struct keys *k, const struct queue_reclaim *r,
               redis_reply_cb cb, void *arg);
/* Blocking, for the supervisor: returns 0 with *requeued and *dead set, or
 * a negative code with err filled. */
struct redis_sync;
int queue_reclaim_sync(struct redis_sync *s, const char *prefix, const char *wid,
                       const struct queue_reclaim *r, long long *requeued, long long *dead,
                       struct hk_err *err);

/* Dead-letter maintenance (command-line tools). triples: entry (exact
 * bytes), job to LPUSH onto the queue ('' = purge), dead_id; at most
 * QUEUE_DLQ_MOVE_MAX; counter is "replayed" or "purged". Returns how many
 * entries were found and moved, or a negative code. */
long long queue_dlq_move(struct redis_sync *s, const struct keys *k, const char *counter,
                         const char **triples, const size_t *lens, size_t ntriples,
                         struct hk_err *err);
long long queue_dlq_purge_all(struct redis_sync *s, const struct keys *k,
                              struct hk_err *err);

/* BACKLOG (read only, for the metrics process): P:queue's length, P:backlog
 * (src/lua/lib/backlog.lua) and the earliest retry's due time, read at one
 * instant. Returns 0, or a negative code with err filled. */
int queue_backlog_sync(struct redis_sync *s, const struct keys *k,
                       struct backlog_reading *out, struct hk_err *err);

/* ENDPOINT_SET (hookd endpoints enable|disable): origin (at most
 * QUEUE_ORIGIN_MAX bytes) closed (enable) or disabled by hand, with its
 * event (and ops job when ops_url is not NULL), its counter, and its parked
 * jobs re-scored to be served (or drained) now. origin_json is the origin
 * as a JSON string (json_write_string). window_ms is breaker_window: a
 * closed record expires two windows after. On 0, was and now hold the
 * states before and after ("none": no record); equal when nothing changed.
 * Else a negative code with err filled. */
#define QUEUE_ORIGIN_MAX 299
#define QUEUE_STATE_MAX 16
struct queue_endpoint_set {
    int enable;                 /* 1 enable, 0 disable */
    const char *origin, *origin_json;
    size_t events_max;
    const char *ops_url;        /* NULL: none */
    long window_ms;
};
int queue_endpoint_set(struct redis_sync *s, const struct keys *k,
                       const struct queue_endpoint_set *set, char was[QUEUE_STATE_MAX],
                       char now[QUEUE_STATE_MAX], struct hk_err *err);

/* ENDPOINT_COUNTS (read only, for the metrics process): origins open,
 * half_open, disabled (from P:endpoints, at most 10,000 read), throttled
 * now, and with parked jobs. Returns 0, or a negative code with err
 * filled. */
struct queue_endpoint_counts {
    long long open, half_open, disabled, throttled, parked;
    int complete;               /* 0: P:endpoints was only partly read */
};
int queue_endpoint_counts_sync(struct redis_sync *s, const struct keys *k,
                               struct queue_endpoint_counts *out, struct hk_err *err);

#endif
