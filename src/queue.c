/* queue.c -- Redis data model and Lua scripts (see queue.h for the keys).
 *
 * Why Lua: each move of a job between keys must be atomic, or a crash
 * between two commands loses or duplicates it. Redis runs a script to
 * completion with nothing interleaved, and with AOF the script's effects are
 * persisted together. Scripts are sent with EVAL every time rather than
 * EVALSHA: they are small, Redis caches the compiled function by its SHA
 * anyway, and a Redis that restarted (and forgot its script cache) needs no
 * NOSCRIPT recovery path.
 *
 * Key names built inside scripts (reclaim, reap) assume a single Redis, not
 * Redis Cluster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hookd/mem.h"
#include "hookd/queue.h"

/* KEYS: claim, queue, inflight. ARGV: base seq, max.
 * Claimed jobs (moved by BLMOVE while waiting) are older than anything left
 * in the queue, so they go first. RPOP with a count (Redis >= 6.2) takes a
 * whole batch in one call. */
static const char FETCH_LUA[] =
    "local base, max = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local out, args = {}, {}\n"
    "while #out < max do\n"
    "  local j = redis.call('RPOP', KEYS[1])\n"
    "  if not j then break end\n"
    "  out[#out + 1] = j\n"
    "end\n"
    "if #out < max then\n"
    "  local jobs = redis.call('RPOP', KEYS[2], max - #out)\n"
    "  if jobs then for i = 1, #jobs do out[#out + 1] = jobs[i] end end\n"
    "end\n"
    "if #out == 0 then return out end\n"
    "for i = 1, #out do args[2 * i - 1] = tostring(base + i); args[2 * i] = out[i] end\n"
    "redis.call('HSET', KEYS[3], unpack(args))\n"
    "return out\n";

/* KEYS: inflight, stats. ARGV: seqs. HDEL's count makes a replayed ack
 * (reply lost, sent again after reconnecting) count nothing twice. */
static const char ACK_LUA[] =
    "local n = redis.call('HDEL', KEYS[1], unpack(ARGV))\n"
    "if n > 0 then redis.call('HINCRBY', KEYS[2], 'delivered', n) end\n"
    "return n\n";

/* KEYS: inflight, dead, stats. ARGV: seq, entry, dead_max, invalid (0/1).
 * The entry is pushed only if this call removed the job from flight, so a
 * replay cannot dead-letter it twice. */
static const char DEAD_LUA[] =
    "if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "local len = redis.call('LPUSH', KEYS[2], ARGV[2])\n"
    "local max = tonumber(ARGV[3])\n"
    "if len > max then\n"
    "  redis.call('LTRIM', KEYS[2], 0, max - 1)\n"
    "  redis.call('HINCRBY', KEYS[3], 'dead_trimmed', len - max)\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[3], 'dead', 1)\n"
    "if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[3], 'invalid', 1) end\n"
    "return 1\n";

/* KEYS: inflight, queue, stats. ARGV: lo, hi. Jobs go back to the right
 * end (next to be taken), oldest rightmost. */
static const char RELEASE_LUA[] =
    "local n = 0\n"
    "for s = tonumber(ARGV[2]), tonumber(ARGV[1]), -1 do\n"
    "  local j = redis.call('HGET', KEYS[1], tostring(s))\n"
    "  if j then\n"
    "    redis.call('RPUSH', KEYS[2], j)\n"
    "    redis.call('HDEL', KEYS[1], tostring(s))\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "if n > 0 then redis.call('HINCRBY', KEYS[3], 'requeued', n) end\n"
    "return n\n";

/* KEYS: hb, workers. ARGV: wid, ttl ms, info, now ms. */
static const char HEARTBEAT_LUA[] =
    "redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
    "return 1\n";

/* ARGV: prefix, wid ('' = every registered worker whose heartbeat is gone).
 * A worker's claimed jobs return first, then its in-flight ones in seq
 * order, all to the right end of the queue, so the oldest is taken next.
 * Registration, heartbeat and both per-worker keys are removed in the same
 * step: a job is always in exactly one of queue / claim / inflight. */
static const char RECLAIM_LUA[] =
    "local p = ARGV[1]\n"
    "local function reclaim(wid)\n"
    "  local q, claim, inflight = p .. ':queue', p .. ':claim:' .. wid, p .. ':inflight:' .. wid\n"
    "  local n = 0\n"
    "  while redis.call('LMOVE', claim, q, 'LEFT', 'RIGHT') do n = n + 1 end\n"
    "  local all = redis.call('HGETALL', inflight)\n"
    "  local items = {}\n"
    "  for i = 1, #all, 2 do items[#items + 1] = {tonumber(all[i]), all[i + 1]} end\n"
    "  table.sort(items, function(a, b) return a[1] < b[1] end)\n"
    "  for i = #items, 1, -1 do redis.call('RPUSH', q, items[i][2]) end\n"
    "  n = n + #items\n"
    "  redis.call('DEL', inflight, claim, p .. ':hb:' .. wid)\n"
    "  redis.call('HDEL', p .. ':workers', wid)\n"
    "  if n > 0 then redis.call('HINCRBY', p .. ':stats', 'requeued', n) end\n"
    "  return n\n"
    "end\n"
    "if ARGV[2] ~= '' then return reclaim(ARGV[2]) end\n"
    "local total = 0\n"
    "for _, wid in ipairs(redis.call('HKEYS', p .. ':workers')) do\n"
    "  if redis.call('EXISTS', p .. ':hb:' .. wid) == 0 then total = total + reclaim(wid) end\n"
    "end\n"
    "return total\n";

void queue_keys_init(struct queue_keys *k, const char *prefix, const char *wid)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->prefix, sizeof(k->prefix), "%s", prefix);
    snprintf(k->wid, sizeof(k->wid), "%s", wid ? wid : "");
    snprintf(k->queue, sizeof(k->queue), "%s:queue", prefix);
    snprintf(k->workers, sizeof(k->workers), "%s:workers", prefix);
    snprintf(k->dead, sizeof(k->dead), "%s:dead", prefix);
    snprintf(k->stats, sizeof(k->stats), "%s:stats", prefix);
    if (wid != NULL) {
        snprintf(k->claim, sizeof(k->claim), "%s:claim:%s", prefix, wid);
        snprintf(k->inflight, sizeof(k->inflight), "%s:inflight:%s", prefix, wid);
        snprintf(k->hb, sizeof(k->hb), "%s:hb:%s", prefix, wid);
    }
}

/* EVAL script with nkeys keys then the remaining args (all C strings unless
 * lens given). */
static int eval(struct redis_conn *c, const char *script, int nkeys, int nargs,
                const char **args, const size_t *lens, redis_reply_cb cb, void *arg)
{
    const char *argv_small[16];
    size_t lens_small[16];
    const char **argv = argv_small;
    size_t *argl = lens_small;
    char nk[16];
    int argc = 3 + nargs, rc;

    if (argc > 16) {
        argv = xmalloc((size_t)argc * sizeof(*argv));
        argl = xmalloc((size_t)argc * sizeof(*argl));
    }
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = nk;
    for (int i = 0; i < 3; i++)
        argl[i] = strlen(argv[i]);
    for (int i = 0; i < nargs; i++) {
        argv[3 + i] = args[i];
        argl[3 + i] = lens ? lens[i] : strlen(args[i]);
    }
    rc = redis_command(c, cb, arg, argc, argv, argl);
    if (argv != argv_small) {
        free(argv);
        free(argl);
    }
    return rc;
}

int queue_fetch(struct redis_conn *c, const struct queue_keys *k, uint64_t base, int max,
                redis_reply_cb cb, void *arg)
{
    char b[24], m[16];
    const char *args[] = { k->claim, k->queue, k->inflight, b, m };

    snprintf(b, sizeof(b), "%llu", (unsigned long long)base);
    snprintf(m, sizeof(m), "%d", max);
    return eval(c, FETCH_LUA, 3, 5, args, NULL, cb, arg);
}

int queue_wait(struct redis_conn *c, const struct queue_keys *k, double timeout_s,
               redis_reply_cb cb, void *arg)
{
    char t[32];
    const char *argv[] = { "BLMOVE", k->queue, k->claim, "RIGHT", "LEFT", t };

    snprintf(t, sizeof(t), "%.3f", timeout_s);
    return redis_command(c, cb, arg, 6, argv, NULL);
}

int queue_ack(struct redis_conn *c, const struct queue_keys *k, const uint64_t *seqs,
              size_t n, redis_reply_cb cb, void *arg)
{
    const char **args = xmalloc((n + 2) * sizeof(*args));
    char *nums = xmalloc(n * 24);
    int rc;

    args[0] = k->inflight;
    args[1] = k->stats;
    for (size_t i = 0; i < n; i++) {
        snprintf(nums + 24 * i, 24, "%llu", (unsigned long long)seqs[i]);
        args[2 + i] = nums + 24 * i;
    }
    rc = eval(c, ACK_LUA, 2, (int)n + 2, args, NULL, cb, arg);
    free(args);
    free(nums);
    return rc;
}

int queue_dead(struct redis_conn *c, const struct queue_keys *k, uint64_t seq,
               const char *entry, size_t len, int invalid, size_t dead_max,
               redis_reply_cb cb, void *arg)
{
    char s[24], m[24];
    const char *args[] = { k->inflight, k->dead, k->stats, s, entry, m, invalid ? "1" : "0" };
    size_t lens[7];

    snprintf(s, sizeof(s), "%llu", (unsigned long long)seq);
    snprintf(m, sizeof(m), "%zu", dead_max);
    for (int i = 0; i < 7; i++)
        lens[i] = i == 4 ? len : strlen(args[i]);
    return eval(c, DEAD_LUA, 3, 7, args, lens, cb, arg);
}

int queue_release_range(struct redis_conn *c, const struct queue_keys *k, uint64_t lo,
                        uint64_t hi, redis_reply_cb cb, void *arg)
{
    char l[24], h[24];
    const char *args[] = { k->inflight, k->queue, k->stats, l, h };

    snprintf(l, sizeof(l), "%llu", (unsigned long long)lo);
    snprintf(h, sizeof(h), "%llu", (unsigned long long)hi);
    return eval(c, RELEASE_LUA, 3, 5, args, NULL, cb, arg);
}

int queue_heartbeat(struct redis_conn *c, const struct queue_keys *k, long ttl_ms,
                    const char *info, redis_reply_cb cb, void *arg)
{
    char t[24], now[24];
    struct timespec ts;
    const char *args[] = { k->hb, k->workers, k->wid, t, info, now };

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(t, sizeof(t), "%ld", ttl_ms);
    snprintf(now, sizeof(now), "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    return eval(c, HEARTBEAT_LUA, 2, 6, args, NULL, cb, arg);
}

int queue_reap(struct redis_conn *c, const struct queue_keys *k, redis_reply_cb cb, void *arg)
{
    const char *args[] = { k->prefix, "" };

    return eval(c, RECLAIM_LUA, 0, 2, args, NULL, cb, arg);
}

int queue_reclaim_async(struct redis_conn *c, const struct queue_keys *k, redis_reply_cb cb,
                        void *arg)
{
    const char *args[] = { k->prefix, k->wid };

    return eval(c, RECLAIM_LUA, 0, 2, args, NULL, cb, arg);
}

long long queue_reclaim_sync(struct redis_sync *s, const char *prefix, const char *wid,
                             struct hk_err *err)
{
    const char *argv[] = { "EVAL", RECLAIM_LUA, "0", prefix, wid };
    struct redisReply *r = redis_sync_command(s, 5, argv, NULL, err);
    long long n;

    if (r == NULL)
        return HK_EREDIS;
    n = redis_reply_integer(r);
    redis_sync_reply_free(r);
    return n;
}
