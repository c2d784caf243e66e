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

/* Every script that touches a key first checks its type, so a key clobbered
 * by hand (SET hookd:queue x) gives an error that names it, instead of a
 * WRONGTYPE from deep inside a script. */
#define TYPE_GUARD \
    "local function guard(key, want)\n" \
    "  local t = redis.call('TYPE', key).ok\n" \
    "  if t ~= want and t ~= 'none' then\n" \
    "    return redis.error_reply('hookd: key ' .. key .. ' holds a ' .. t .. ', not a ' .. want .. '; rename or delete it')\n" \
    "  end\n" \
    "end\n"

/* JOB_ACCEPTED_MARK (job.h) as a Lua literal: "\xc1accepted:" (Lua 5.1
 * has decimal escapes only). Jobs hookd puts back after they may have been
 * accepted by ACCEPT carry it, so they are not taken for duplicates of
 * themselves; marking twice is avoided. */
#define MARK_LUA \
    "local MARK = '\\193accepted:'\n" \
    "local function marked(j) if string.sub(j, 1, #MARK) == MARK then return j end return MARK .. j end\n"

/* KEYS: claim, queue, inflight, parked, stats. ARGV: base seq, max, then pairs of
 * origin and count: parked jobs to take.
 * Parked jobs waited longest, so they go first, then claimed jobs (moved by
 * BLMOVE while waiting: older than anything left in the queue), then the
 * queue. RPOP with a count (Redis >= 6.2) takes a whole batch in one call.
 * An origin served gets a new score, so the next worker's look at P:parked
 * (oldest first) sees the origins not served for longest; one whose list
 * ran empty leaves P:parked.
 * Returns {jobs, up to 32 parked origins}. */
static const char FETCH_LUA[] =
    TYPE_GUARD
    "local e = guard(KEYS[1], 'list') or guard(KEYS[2], 'list') or guard(KEYS[3], 'hash')\n"
    "  or guard(KEYS[4], 'zset')\n"
    "if e then return e end\n"
    "local base, max = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local out, args = {}, {}\n"
    "local unparked = 0\n"
    "for i = 3, #ARGV, 2 do\n"
    "  local list, want = KEYS[4] .. ':' .. ARGV[i], math.min(tonumber(ARGV[i + 1]), max - #out)\n"
    "  local g = guard(list, 'list')\n"
    "  if g then return g end\n"
    "  if want > 0 then\n"
    "    local jobs = redis.call('RPOP', list, want)\n"
    "    if jobs then for k = 1, #jobs do out[#out + 1] = jobs[k] end; unparked = unparked + #jobs end\n"
    "  end\n"
    "  if redis.call('EXISTS', list) == 0 then redis.call('ZREM', KEYS[4], ARGV[i])\n"
    "  else\n"
    "    local t = redis.call('TIME')\n"
    "    redis.call('ZADD', KEYS[4], 'XX', t[1] * 1000 + math.floor(t[2] / 1000), ARGV[i])\n"
    "  end\n"
    "end\n"
    "while #out < max do\n"
    "  local j = redis.call('RPOP', KEYS[1])\n"
    "  if not j then break end\n"
    "  out[#out + 1] = j\n"
    "end\n"
    "if #out < max then\n"
    "  local jobs = redis.call('RPOP', KEYS[2], max - #out)\n"
    "  if jobs then for i = 1, #jobs do out[#out + 1] = jobs[i] end end\n"
    "end\n"
    "if unparked > 0 then redis.call('HINCRBY', KEYS[5], 'unparked', unparked) end\n"
    "if #out > 0 then\n"
    "  for i = 1, #out do args[2 * i - 1] = tostring(base + i); args[2 * i] = out[i] end\n"
    "  redis.call('HSET', KEYS[3], unpack(args))\n"
    "end\n"
    "return {out, redis.call('ZRANGE', KEYS[4], 0, 31)}\n";

/* Typed jobs (event.h), applied by RECORD's kind X. ev is the msgpack map
 * event_encode() wrote; fallback is the retry envelope or dead entry used
 * when the batch is not registered. The batch is the hash P:batch:<id>
 * (fields: see DESIGN.md), its counted calls the set P:batch:<id>:calls;
 * both expire after batch_ttl. Webhooks are pushed onto the queue as plain
 * msgpack jobs built from the batch's URLs and secret, with ids derived
 * from the batch and call ids. Payload strings arrive as JSON fragments
 * rendered by hookd (event.c), so nothing here escapes JSON; numbers are
 * integers, written with %d.
 * A call is counted only if SADD added its id (counting twice is
 * impossible); the call that makes processed reach total, in a batch not
 * failed, sets completedAt and pushes batch.completed, in the same script,
 * so exactly one call can do it. Percentages are integers rounded half up,
 * as event_percent() in C. */
#define EVENT_LUA \
    "local function pct(n, d) if d == 0 then return 0 end return math.floor((200 * n + d) / (2 * d)) end\n" \
    "local function emit(c, event, url, id, body, secret)\n" \
    "  if not url then c.skipped = c.skipped + 1; return end\n" \
    "  local j = {id = id, url = url, event = event, body = body}\n" \
    "  if secret then j.secret = secret end\n" \
    "  redis.call('LPUSH', KEYS[7], cmsgpack.pack(j))\n" \
    "  c.generated = c.generated + 1\n" \
    "end\n" \
    "local function apply(c, ev, fallback, now)\n" \
    "  local seen = ev.eid and ev.win > 0 and (KEYS[9] .. ':' .. ev.eid)\n" \
    "  if seen and redis.call('EXISTS', seen) == 1 then c.duplicate = c.duplicate + 1; return end\n" \
    "  local bkey = KEYS[8] .. ':' .. ev.b\n" \
    "  local calls = bkey .. ':calls'\n" \
    "  local g = guard(bkey, 'hash') or guard(calls, 'set')\n" \
    "  if g then return g end\n" \
    "  local exists = redis.call('EXISTS', bkey) == 1\n" \
    "  if ev.t == 'batch.create' then\n" \
    "    if exists then c.duplicate = c.duplicate + 1; return end\n" \
    "    redis.call('HSET', bkey, 'batchId', ev.b, 'agentId', ev.agent, 'userId', ev.user,\n" \
    "      'total', ev.total, 'processed', 0, 'succeeded', 0, 'failed', 0, 'createdAt', ev.created,\n" \
    "      'jb', ev.jb, 'ju', ev.ju)\n" \
    "    for _, f in ipairs({'secret', 'on_complete', 'on_call', 'on_failed'}) do\n" \
    "      if ev[f] then redis.call('HSET', bkey, f, ev[f]) end\n" \
    "    end\n" \
    "    redis.call('PEXPIRE', bkey, ev.ttl)\n" \
    "    c.batches = c.batches + 1\n" \
    "  elseif not exists then\n" \
    "    if ev.fb == 'R' then\n" \
    "      redis.call('ZADD', KEYS[2], now() + ev.delay, fallback)\n" \
    "      c.unknown_batch_retried = c.unknown_batch_retried + 1\n" \
    "    else\n" \
    "      redis.call('LPUSH', KEYS[3], fallback)\n" \
    "      c.dead = c.dead + 1\n" \
    "    end\n" \
    "    return\n" \
    "  else\n" \
    "    local h = redis.call('HMGET', bkey, 'total', 'processed', 'succeeded', 'failed', 'startedAt',\n" \
    "      'completedAt', 'failedAt', 'secret', 'on_complete', 'on_call', 'on_failed', 'jb', 'ju', 'createdAt')\n" \
    "    local total, p, s, f = tonumber(h[1]), tonumber(h[2]), tonumber(h[3]), tonumber(h[4])\n" \
    "    if ev.t == 'call.completed' then\n" \
    "      if redis.call('SADD', calls, ev.call) == 0 then c.duplicate = c.duplicate + 1; return end\n" \
    "      local ttl = redis.call('PTTL', bkey)\n" \
    "      if ttl > 0 then redis.call('PEXPIRE', calls, ttl) end\n" \
    "      emit(c, 'call.completed', h[10], 'call.completed:' .. ev.b .. ':' .. ev.call, ev.body, h[8])\n" \
    "      if p >= total then c.calls_over_total = c.calls_over_total + 1\n" \
    "      else\n" \
    "        p = p + 1\n" \
    "        if ev.ok == 1 then s = s + 1 else f = f + 1 end\n" \
    "        redis.call('HSET', bkey, 'processed', p, 'succeeded', s, 'failed', f)\n" \
    "        local started = h[5]\n" \
    "        if not started then started = ev.now; redis.call('HSET', bkey, 'startedAt', started) end\n" \
    "        if p == total and not h[7] and not h[6] then\n" \
    "          redis.call('HSET', bkey, 'completedAt', ev.now)\n" \
    "          local body = '{\"event\":\"batch.completed\",' .. h[12] .. ',' .. h[13] ..\n" \
    "            string.format(',\"statistics\":{\"total\":%d,\"processed\":%d,\"succeeded\":%d,\"failed\":%d,' ..\n" \
    "              '\"percentComplete\":%d,\"successRate\":%d}', total, p, s, f, pct(p, total), pct(s, p)) ..\n" \
    "            ',\"timestamps\":{\"createdAt\":\"' .. h[14] .. '\",\"startedAt\":\"' .. started ..\n" \
    "            '\",\"completedAt\":\"' .. ev.now .. '\"}}'\n" \
    "          emit(c, 'batch.completed', h[9], 'batch.completed:' .. ev.b, body, h[8])\n" \
    "        end\n" \
    "      end\n" \
    "    else\n" \
    "      if redis.call('HSETNX', bkey, 'failedAt', ev.now) == 0 then c.duplicate = c.duplicate + 1; return end\n" \
    "      redis.call('HSET', bkey, 'error', ev.error, 'code', ev.code)\n" \
    "      local body = '{\"event\":\"batch.failed\",' .. h[12] .. ',' .. ev.ec ..\n" \
    "        ',\"timestamp\":\"' .. ev.now .. '\"}'\n" \
    "      emit(c, 'batch.failed', h[11], 'batch.failed:' .. ev.b, body, h[8])\n" \
    "    end\n" \
    "  end\n" \
    "  if seen then redis.call('SET', seen, 1, 'PX', ev.win) end\n" \
    "end\n"

/* KEYS: inflight, retry, dead, stats, dead secrets, parked, queue, batch
 * prefix, seen prefix.
 * ARGV: dead_max, wid, then groups of four: kind, seq, a, b.
 *   A  delivered
 *   R  failed attempt, retry later: a = envelope (sorted-set member), b = delay ms
 *   D  failed attempt, final: a = dead entry, b = the job's own secret or ''
 *   I  invalid job: a = dead entry, b = ''
 *   E  dead without an attempt (could not sign or start): a, b as D
 *   K  not attempted, its origin is saturated: a = origin; the job goes to
 *      the origin's parked list P:parked:<origin>, the origin into P:parked
 *   X  a typed job, applied (EVENT_LUA): a = event_encode()'s map, b = the
 *      retry envelope or dead entry for when its batch is unknown
 * Each outcome takes effect only if its HDEL removed the job from flight, so
 * replaying a batch (reply lost, sent again) changes nothing, and an outcome
 * for a job reclaimed meanwhile leaves the requeued copy alone. Due times
 * come from Redis's clock, so hosts with skewed clocks agree. Per-job
 * secrets of dead jobs are kept aside in P:dead:secrets (never in the entry)
 * so a replay can sign as the producer asked; trimming removes them too. */
static const char RECORD_LUA[] =
    TYPE_GUARD
    MARK_LUA
    EVENT_LUA
    "local e = guard(KEYS[1], 'hash') or guard(KEYS[2], 'zset') or guard(KEYS[3], 'list')\n"
    "  or guard(KEYS[4], 'hash') or guard(KEYS[5], 'hash') or guard(KEYS[6], 'zset')\n"
    "  or guard(KEYS[7], 'list')\n"
    "if e then return e end\n"
    "local max, wid = tonumber(ARGV[1]), ARGV[2]\n"
    "local c = {delivered = 0, failed_attempts = 0, retried = 0, dead = 0, invalid = 0, parked = 0,\n"
    "  events = 0, batches = 0, generated = 0, skipped = 0, duplicate = 0, unknown_batch_retried = 0,\n"
    "  calls_over_total = 0}\n"
    "local t0\n"
    "local function now()\n"
    "  if not t0 then local t = redis.call('TIME'); t0 = t[1] * 1000 + math.floor(t[2] / 1000) end\n"
    "  return t0\n"
    "end\n"
    "for i = 3, #ARGV, 4 do\n"
    "  local kind, seq, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]\n"
    "  local job = kind == 'K' and redis.call('HGET', KEYS[1], seq)\n"
    "  if redis.call('HDEL', KEYS[1], seq) == 1 then\n"
    "    if kind == 'A' then c.delivered = c.delivered + 1\n"
    "    elseif kind == 'X' then\n"
    "      c.events = c.events + 1\n"
    "      local g = apply(c, cmsgpack.unpack(a), b, now)\n"
    "      if g then return g end\n"
    "    elseif kind == 'K' then\n"
    "      local list = KEYS[6] .. ':' .. a\n"
    "      local g = guard(list, 'list')\n"
    "      if g then return g end\n"
    "      redis.call('LPUSH', list, marked(job))\n"
    "      redis.call('ZADD', KEYS[6], 'NX', now(), a)\n"
    "      c.parked = c.parked + 1\n"
    "    elseif kind == 'R' then\n"
    "      redis.call('ZADD', KEYS[2], now() + tonumber(b), a)\n"
    "      c.failed_attempts = c.failed_attempts + 1\n"
    "      c.retried = c.retried + 1\n"
    "    else\n"
    "      redis.call('LPUSH', KEYS[3], a)\n"
    "      if b ~= '' then redis.call('HSET', KEYS[5], wid .. ':' .. seq, b) end\n"
    "      c.dead = c.dead + 1\n"
    "      if kind == 'D' then c.failed_attempts = c.failed_attempts + 1 end\n"
    "      if kind == 'I' then c.invalid = c.invalid + 1 end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if c.dead > 0 then\n"
    "  local len = redis.call('LLEN', KEYS[3])\n"
    "  if len > max then\n"
    "    if redis.call('HLEN', KEYS[5]) > 0 then\n"
    "      for _, e in ipairs(redis.call('LRANGE', KEYS[3], max, -1)) do\n"
    "        local ok, d = pcall(cjson.decode, e)\n"
    "        if ok and type(d) == 'table' and d.dead_id then redis.call('HDEL', KEYS[5], d.dead_id) end\n"
    "      end\n"
    "    end\n"
    "    redis.call('LTRIM', KEYS[3], 0, max - 1)\n"
    "    redis.call('HINCRBY', KEYS[4], 'dead_trimmed', len - max)\n"
    "  end\n"
    "end\n"
    "for k, v in pairs(c) do if v > 0 then redis.call('HINCRBY', KEYS[4], k, v) end end\n"
    "return c.delivered + c.retried + c.dead + c.parked\n";

/* KEYS: retry, queue, stats. ARGV: limit.
 * Due entries go to the right end of the queue (taken next), earliest
 * rightmost. They are the lowest-ranked members, so they are removed by
 * rank (no member lookups: entries are whole jobs, about 1 KB each).
 * Returns {promoted, ms until the next entry is due or -1}. */
static const char PROMOTE_LUA[] =
    TYPE_GUARD
    "local e = guard(KEYS[1], 'zset') or guard(KEYS[2], 'list') or guard(KEYS[3], 'hash')\n"
    "if e then return e end\n"
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))\n"
    "if #due > 0 then\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #due - 1)\n"
    "  local rev = {}\n"
    "  for i = #due, 1, -1 do rev[#rev + 1] = due[i] end\n"
    "  redis.call('RPUSH', KEYS[2], unpack(rev))\n"
    "  redis.call('HINCRBY', KEYS[3], 'promoted', #due)\n"
    "end\n"
    "local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "local wait = -1\n"
    "if nxt[2] then wait = math.max(0, tonumber(nxt[2]) - now) end\n"
    "return {#due, wait}\n";

/* KEYS: inflight, stats. ARGV: seen prefix, wid, window ms, then pairs of
 * seq and id. For each job: 2 if seq is no longer in flight here (requeued
 * meanwhile: not ours to judge); else 0 (new) if P:seen:<id> did not exist
 * and now holds "<wid>:<seq>" for the window, or already holds exactly that
 * (this check repeated after a lost reply); else 1: a duplicate, removed
 * from flight and counted, in the same step, so it is never delivered and
 * never lost without a trace. */
static const char ACCEPT_LUA[] =
    TYPE_GUARD
    "local e = guard(KEYS[1], 'hash') or guard(KEYS[2], 'hash')\n"
    "if e then return e end\n"
    "local out, dup = {}, 0\n"
    "for i = 4, #ARGV, 2 do\n"
    "  local seq, key = ARGV[i], ARGV[1] .. ':' .. ARGV[i + 1]\n"
    "  local me = ARGV[2] .. ':' .. seq\n"
    "  local g = guard(key, 'string')\n"
    "  if g then return g end\n"
    "  if redis.call('HEXISTS', KEYS[1], seq) == 0 then out[#out + 1] = 2\n"
    "  elseif redis.call('SET', key, me, 'NX', 'PX', ARGV[3]) or redis.call('GET', key) == me then\n"
    "    out[#out + 1] = 0\n"
    "  else\n"
    "    redis.call('HDEL', KEYS[1], seq)\n"
    "    dup = dup + 1\n"
    "    out[#out + 1] = 1\n"
    "  end\n"
    "end\n"
    "if dup > 0 then redis.call('HINCRBY', KEYS[2], 'duplicate', dup) end\n"
    "return out\n";

/* KEYS: dead, queue, dead secrets, stats. ARGV: counter name, then groups of
 * three: entry, job ('' = purge), dead_id. Each entry is removed with LREM
 * searching from the tail (oldest), and only if it was still there is its
 * job pushed back or its secret dropped: interrupted or repeated, nothing is
 * lost or doubled. */
static const char DLQ_MOVE_LUA[] =
    "local n = 0\n"
    "for i = 2, #ARGV, 3 do\n"
    "  if redis.call('LREM', KEYS[1], -1, ARGV[i]) == 1 then\n"
    "    if ARGV[i + 1] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[i + 1]) end\n"
    "    if ARGV[i + 2] ~= '' then redis.call('HDEL', KEYS[3], ARGV[i + 2]) end\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "if n > 0 then redis.call('HINCRBY', KEYS[4], ARGV[1], n) end\n"
    "return n\n";

/* KEYS: dead, dead secrets, stats. Drops every dead entry at once. */
static const char DLQ_PURGE_ALL_LUA[] =
    "local n = redis.call('LLEN', KEYS[1])\n"
    "redis.call('DEL', KEYS[1], KEYS[2])\n"
    "if n > 0 then redis.call('HINCRBY', KEYS[3], 'purged', n) end\n"
    "return n\n";

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
    MARK_LUA
    "local p = ARGV[1]\n"
    "local function reclaim(wid)\n"
    "  local q, claim, inflight = p .. ':queue', p .. ':claim:' .. wid, p .. ':inflight:' .. wid\n"
    "  local n = 0\n"
    "  while redis.call('LMOVE', claim, q, 'LEFT', 'RIGHT') do n = n + 1 end\n"
    "  local all = redis.call('HGETALL', inflight)\n"
    "  local items = {}\n"
    "  for i = 1, #all, 2 do items[#items + 1] = {tonumber(all[i]), all[i + 1]} end\n"
    "  table.sort(items, function(a, b) return a[1] < b[1] end)\n"
    "  for i = #items, 1, -1 do redis.call('RPUSH', q, marked(items[i][2])) end\n"
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
    snprintf(k->retry, sizeof(k->retry), "%s:retry", prefix);
    snprintf(k->dead_secrets, sizeof(k->dead_secrets), "%s:dead:secrets", prefix);
    snprintf(k->attempts, sizeof(k->attempts), "%s:attempts", prefix);
    snprintf(k->parked, sizeof(k->parked), "%s:parked", prefix);
    snprintf(k->batch, sizeof(k->batch), "%s:batch", prefix);
    snprintf(k->seen, sizeof(k->seen), "%s:seen", prefix);
    if (wid != NULL) {
        snprintf(k->claim, sizeof(k->claim), "%s:claim:%s", prefix, wid);
        snprintf(k->inflight, sizeof(k->inflight), "%s:inflight:%s", prefix, wid);
        snprintf(k->hb, sizeof(k->hb), "%s:hb:%s", prefix, wid);
    }
}

/* EVAL script: the head (nkeys keys, then fixed arguments; C strings),
 * then the tail (a caller's variable arguments, lengths in tail_lens or C
 * strings when it is NULL), with no intermediate copy of either. */
static int eval(struct redis_conn *c, const char *script, int nkeys, const char **head,
                size_t nhead, const char **tail, const size_t *tail_lens, size_t ntail,
                redis_reply_cb cb, void *arg)
{
    const char *argv_small[16];
    size_t lens_small[16];
    const char **argv = argv_small;
    size_t *argl = lens_small;
    char nk[16];
    size_t argc = 3 + nhead + ntail, n = 0;
    int rc;

    if (argc > 16) {
        argv = xmalloc(argc * sizeof(*argv));
        argl = xmalloc(argc * sizeof(*argl));
    }
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[n++] = "EVAL";
    argv[n++] = script;
    argv[n++] = nk;
    for (size_t i = 0; i < nhead; i++)
        argv[n++] = head[i];
    for (size_t i = 0; i < n; i++)
        argl[i] = strlen(argv[i]);
    for (size_t i = 0; i < ntail; i++, n++) {
        argv[n] = tail[i];
        argl[n] = tail_lens ? tail_lens[i] : strlen(tail[i]);
    }
    rc = redis_command(c, cb, arg, (int)argc, argv, argl);
    if (argv != argv_small) {
        free(argv);
        free(argl);
    }
    return rc;
}

int queue_fetch(struct redis_conn *c, const struct queue_keys *k, uint64_t base, int max,
                const char *const *origins, const int *counts, size_t npull,
                redis_reply_cb cb, void *arg)
{
    char b[24], m[16], cnt[QUEUE_PULL_MAX][16];
    const char *args[7 + 2 * QUEUE_PULL_MAX] = { k->claim, k->queue, k->inflight, k->parked,
                                                 k->stats, b, m };
    size_t n = 7;

    snprintf(b, sizeof(b), "%llu", (unsigned long long)base);
    snprintf(m, sizeof(m), "%d", max);
    for (size_t i = 0; i < npull && i < QUEUE_PULL_MAX; i++) {
        snprintf(cnt[i], sizeof(cnt[i]), "%d", counts[i]);
        args[n++] = origins[i];
        args[n++] = cnt[i];
    }
    return eval(c, FETCH_LUA, 5, args, n, NULL, NULL, 0, cb, arg);
}

int queue_wait(struct redis_conn *c, const struct queue_keys *k, double timeout_s,
               redis_reply_cb cb, void *arg)
{
    char t[32];
    const char *argv[] = { "BLMOVE", k->queue, k->claim, "RIGHT", "LEFT", t };

    snprintf(t, sizeof(t), "%.3f", timeout_s);
    return redis_command(c, cb, arg, 6, argv, NULL);
}

int queue_record(struct redis_conn *c, const struct queue_keys *k, size_t dead_max,
                 const char **args, const size_t *lens, size_t nargs, redis_reply_cb cb,
                 void *arg)
{
    char m[24];
    const char *head[] = { k->inflight, k->retry, k->dead, k->stats, k->dead_secrets,
                           k->parked, k->queue, k->batch, k->seen, m, k->wid };

    snprintf(m, sizeof(m), "%zu", dead_max);
    return eval(c, RECORD_LUA, 9, head, 11, args, lens, nargs, cb, arg);
}

int queue_accept(struct redis_conn *c, const struct queue_keys *k, long window_ms,
                 const char **pairs, size_t npairs, redis_reply_cb cb, void *arg)
{
    char w[24];
    const char *head[] = { k->inflight, k->stats, k->seen, k->wid, w };

    snprintf(w, sizeof(w), "%ld", window_ms);
    return eval(c, ACCEPT_LUA, 2, head, 5, pairs, NULL, npairs, cb, arg);
}

int queue_promote(struct redis_conn *c, const struct queue_keys *k, int limit,
                  redis_reply_cb cb, void *arg)
{
    char n[16];
    const char *args[] = { k->retry, k->queue, k->stats, n };

    snprintf(n, sizeof(n), "%d", limit);
    return eval(c, PROMOTE_LUA, 3, args, 4, NULL, NULL, 0, cb, arg);
}

int queue_log_attempt(struct redis_conn *c, const struct queue_keys *k, size_t maxlen,
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

int queue_release_range(struct redis_conn *c, const struct queue_keys *k, uint64_t lo,
                        uint64_t hi, redis_reply_cb cb, void *arg)
{
    char l[24], h[24];
    const char *args[] = { k->inflight, k->queue, k->stats, l, h };

    snprintf(l, sizeof(l), "%llu", (unsigned long long)lo);
    snprintf(h, sizeof(h), "%llu", (unsigned long long)hi);
    return eval(c, RELEASE_LUA, 3, args, 5, NULL, NULL, 0, cb, arg);
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
    return eval(c, HEARTBEAT_LUA, 2, args, 6, NULL, NULL, 0, cb, arg);
}

int queue_reap(struct redis_conn *c, const struct queue_keys *k, redis_reply_cb cb, void *arg)
{
    const char *args[] = { k->prefix, "" };

    return eval(c, RECLAIM_LUA, 0, args, 2, NULL, NULL, 0, cb, arg);
}

int queue_reclaim_async(struct redis_conn *c, const struct queue_keys *k, redis_reply_cb cb,
                        void *arg)
{
    const char *args[] = { k->prefix, k->wid };

    return eval(c, RECLAIM_LUA, 0, args, 2, NULL, NULL, 0, cb, arg);
}

/* A blocking script call whose reply is an integer. */
static long long sync_int(struct redis_sync *s, int argc, const char **argv,
                          const size_t *lens, struct hk_err *err)
{
    struct redisReply *r = redis_sync_command(s, argc, argv, lens, err);
    long long n;

    if (r == NULL)
        return HK_EREDIS;
    n = redis_reply_integer(r);
    redis_sync_reply_free(r);
    return n;
}

long long queue_reclaim_sync(struct redis_sync *s, const char *prefix, const char *wid,
                             struct hk_err *err)
{
    const char *argv[] = { "EVAL", RECLAIM_LUA, "0", prefix, wid };

    return sync_int(s, 5, argv, NULL, err);
}

long long queue_dlq_move(struct redis_sync *s, const struct queue_keys *k, const char *counter,
                         const char **triples, const size_t *lens, size_t ntriples,
                         struct hk_err *err)
{
    size_t argc = 3 + 4 + 1 + 3 * ntriples;
    const char **a = xmalloc(argc * sizeof(*a));
    size_t *l = xmalloc(argc * sizeof(*l));
    long long n;

    a[0] = "EVAL";
    a[1] = DLQ_MOVE_LUA;
    a[2] = "4";
    a[3] = k->dead;
    a[4] = k->queue;
    a[5] = k->dead_secrets;
    a[6] = k->stats;
    a[7] = counter;
    for (int i = 0; i < 8; i++)
        l[i] = strlen(a[i]);
    memcpy(a + 8, triples, 3 * ntriples * sizeof(*a));
    memcpy(l + 8, lens, 3 * ntriples * sizeof(*l));
    n = sync_int(s, (int)argc, a, l, err);
    free(a);
    free(l);
    return n;
}

long long queue_dlq_purge_all(struct redis_sync *s, const struct queue_keys *k,
                              struct hk_err *err)
{
    const char *argv[] = { "EVAL", DLQ_PURGE_ALL_LUA, "3", k->dead, k->dead_secrets, k->stats };

    return sync_int(s, 6, argv, NULL, err);
}
