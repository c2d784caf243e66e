/* queue.h -- every Redis key hookd uses, and the Lua scripts that move jobs
 * between them. docs/DESIGN.md describes the same model in prose.
 *
 * Keys (P = prefix):
 *   P:queue           list   producers LPUSH; workers take from the right
 *   P:claim:<wid>     list   BLMOVE target while a worker waits for work
 *   P:inflight:<wid>  hash   seq -> job bytes, one entry per job a worker holds
 *   P:workers         hash   wid -> JSON info of every registered worker
 *   P:hb:<wid>        string heartbeat, expires after heartbeat_ttl
 *   P:retry           zset   retry envelopes scored by due time (ms, Redis clock)
 *   P:dead            list   dead-letter entries (JSON), newest first, capped
 *   P:dead:secrets    hash   dead_id -> per-job secret of a dead job (for replay)
 *   P:attempts        stream attempt history, capped
 *   P:parked          zset   origins with parked jobs, scored by when last served
 *   P:parked:<origin> list   jobs parked because their origin was saturated
 *   P:batch:<id>      hash   a Dialgen batch: ids, URLs, secret, statistics, times
 *   P:batch:<id>:calls set    call ids counted into the batch
 *   P:seen:<id>       string ids accepted within dedupe_window
 *   P:stats           hash   counters
 *
 * All functions take a callback per the rule in redis.h: an error return
 * means it never fires, else it fires once with the reply or NULL. */
#ifndef HOOKD_QUEUE_H
#define HOOKD_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "hookd/redis.h"

#define QUEUE_KEY_MAX 256

struct queue_keys {
    char prefix[80];
    char wid[128];
    char queue[QUEUE_KEY_MAX];
    char claim[QUEUE_KEY_MAX];
    char inflight[QUEUE_KEY_MAX];
    char workers[QUEUE_KEY_MAX];
    char hb[QUEUE_KEY_MAX];
    char dead[QUEUE_KEY_MAX];
    char stats[QUEUE_KEY_MAX];
    char retry[QUEUE_KEY_MAX];
    char dead_secrets[QUEUE_KEY_MAX];
    char attempts[QUEUE_KEY_MAX];
    char parked[QUEUE_KEY_MAX];
    char batch[QUEUE_KEY_MAX];      /* prefix of P:batch:<id>[:calls] */
    char seen[QUEUE_KEY_MAX];       /* prefix of P:seen:<id> */
};

/* wid may be NULL for tools that do not act as a worker. */
void queue_keys_init(struct queue_keys *k, const char *prefix, const char *wid);

/* Move up to max jobs (first counts[i] parked jobs of each origins[i], then
 * claimed ones, then from P:queue) into the worker's in-flight hash under
 * seqs base+1 .. base+n, atomically. The reply is [the n jobs in seq order,
 * up to 32 origins that still have parked jobs, least recently served
 * first]. */
#define QUEUE_PULL_MAX 32           /* parked origins per fetch */
int queue_fetch(struct redis_conn *c, const struct queue_keys *k, uint64_t base, int max,
                const char *const *origins, const int *counts, size_t npull,
                redis_reply_cb cb, void *arg);

/* Block up to timeout_s for a job: BLMOVE P:queue -> P:claim:<wid>. The next
 * queue_fetch takes it into the in-flight hash; the reply is not needed. */
int queue_wait(struct redis_conn *c, const struct queue_keys *k, double timeout_s,
               redis_reply_cb cb, void *arg);

/* Record a batch of outcomes in one atomic, idempotent script (see
 * RECORD_LUA in queue.c for the groups of four in args). */
#define QUEUE_RECORD_MAX 500        /* outcomes per call */
int queue_record(struct redis_conn *c, const struct queue_keys *k, size_t dead_max,
                 const char **args, const size_t *lens, size_t nargs, redis_reply_cb cb,
                 void *arg);

/* Accept job ids for dedupe_window (see ACCEPT_LUA in queue.c): pairs are
 * seq, id. Reply: one integer per pair, 0 new, 1 duplicate (recorded), 2
 * no longer in flight here. */
int queue_accept(struct redis_conn *c, const struct queue_keys *k, long window_ms,
                 const char **pairs, size_t npairs, redis_reply_cb cb, void *arg);

/* Move due retries (at most limit) to the queue. Reply: [moved, ms until
 * the next one is due or -1]. */
int queue_promote(struct redis_conn *c, const struct queue_keys *k, int limit,
                  redis_reply_cb cb, void *arg);

/* XADD one attempt (field/value pairs) to P:attempts, capped near maxlen. */
int queue_log_attempt(struct redis_conn *c, const struct queue_keys *k, size_t maxlen,
                      const char **fields, const size_t *lens, size_t nfields,
                      redis_reply_cb cb, void *arg);

/* Give seqs lo..hi back to the queue (those still in flight): used for a
 * fetch whose reply was lost, so its jobs do not sit unseen. */
int queue_release_range(struct redis_conn *c, const struct queue_keys *k, uint64_t lo,
                        uint64_t hi, redis_reply_cb cb, void *arg);

/* Refresh the heartbeat (TTL ttl_ms) and the registration in P:workers. */
int queue_heartbeat(struct redis_conn *c, const struct queue_keys *k, long ttl_ms,
                    const char *info, redis_reply_cb cb, void *arg);

/* Requeue the jobs of every registered worker whose heartbeat expired, and
 * forget those workers. Reply: number of jobs requeued. */
int queue_reap(struct redis_conn *c, const struct queue_keys *k, redis_reply_cb cb,
               void *arg);

/* Requeue all of one worker's jobs and unregister it (a worker's own clean
 * exit, or the supervisor after reaping a dead worker). Returns the number
 * of jobs requeued (>= 0) or a negative code with err filled. */
int queue_reclaim_async(struct redis_conn *c, const struct queue_keys *k, redis_reply_cb cb,
                        void *arg);
struct redis_sync;
long long queue_reclaim_sync(struct redis_sync *s, const char *prefix, const char *wid,
                             struct hk_err *err);

/* Dead-letter maintenance (command-line tools). triples: entry (exact
 * bytes), job to LPUSH onto the queue ('' = purge), dead_id; counter is the
 * stats field to count in ("replayed", "purged"). Returns how many entries
 * were found and moved, or a negative code. */
long long queue_dlq_move(struct redis_sync *s, const struct queue_keys *k, const char *counter,
                         const char **triples, const size_t *lens, size_t ntriples,
                         struct hk_err *err);
long long queue_dlq_purge_all(struct redis_sync *s, const struct queue_keys *k,
                              struct hk_err *err);

#endif
