#!lua
-- RECORD: the outcomes of a batch of deliveries, each moving its job out of
-- the worker's in-flight hash.
--
-- KEYS  1 inflight  hash   P:inflight:<wid>
--       2 retry     zset   P:retry
--       3 dead      list   P:dead
--       4 stats     hash   P:stats
--       5 aside     hash   P:dead:secrets
--       6 parked    zset   P:parked
--       7 queue     list   P:queue
-- ARGV  1 dead_max      integer 1..2^40
--       2 wid           the worker's id (1..127 bytes): dead_id = wid:seq
--       3 batch prefix  P:batch
--       4 seen prefix   P:seen
--       5.. groups of four, at most 500 (QUEUE_RECORD_MAX): kind, seq, a, b
--         A  delivered
--         R  failed attempt, retry later: a = retry envelope (the sorted-set
--            member), b = delay in ms (0..366 days)
--         D  failed attempt, final: a = dead entry (JSON), b = what to keep
--            aside for replay ('' = nothing; see cli.c)
--         I  invalid job: a, b as D
--         E  dead without an attempt (could not sign or start): a, b as D
--         K  not attempted, its origin is saturated: a = origin (1..299
--            bytes); the job goes to P:parked:<origin>, marked accepted
--            (marks.lua), and the origin into P:parked
--         X  a typed job (event.lua): a = event_encode()'s map, b = the
--            retry envelope or dead entry for when its batch is unknown
--            (required but for batch.create)
-- Moves each job whose HDEL from inflight removed it: nowhere (A), to
--       P:retry (R, due now + delay on Redis's clock), to P:dead (D, I, E;
--       b into P:dead:secrets under wid:seq), to its origin's parked list
--       (K), or as event.lua says (X). An outcome whose seq is no longer in
--       flight (a resent batch whose reply was lost, a job reclaimed
--       meanwhile) does nothing. Then trims P:dead to dead_max (dead.lua)
--       and adds the counters.
-- Reply {applied, refused}: how many outcomes moved their job; seq, reason
--       pairs for outcomes left undone, their job still in flight: K whose
--       parked list, X whose batch or seen key holds another type (or a
--       batch hash without whole-number counters). The worker keeps those
--       and sends them again until the key is fixed; the rest apply.
-- Refuses (error reply, nothing changed): a KEY of the wrong type, a
--       counter in P:stats not a whole number, an argument malformed or out
--       of range.
--!include lib.lua
--!include marks.lua
--!include dead.lua
--!include event.lua

local RECORD_MAX, ORIGIN_MAX, DELAY_MAX = 500, 299, 366 * 86400000
local inflight, retry, dead, stats, aside, parked, queue =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

local COUNTERS = {'delivered', 'failed_attempts', 'retried', 'dead', 'invalid', 'parked',
  'events', 'batches', 'generated', 'skipped', 'duplicate', 'unknown_batch_retried',
  'calls_over_total', 'dead_trimmed'}
local e = check_types({inflight, 'hash', retry, 'zset', dead, 'list', stats, 'hash',
                       aside, 'hash', parked, 'zset', queue, 'list'}) or
          check_counters(stats, COUNTERS)
if e then return e end
local dead_max, wid = int_arg(ARGV[1], 1, 2 ^ 40), ARGV[2]
if not dead_max or not wid or #wid < 1 or #wid > 127 or not ARGV[3] or not ARGV[4] then
  return refuse('RECORD: bad dead_max, wid or prefixes')
end
if (#ARGV - 4) % 4 ~= 0 or (#ARGV - 4) / 4 > RECORD_MAX then
  return refuse('RECORD: expected up to %d groups of kind, seq, a, b', RECORD_MAX)
end

-- Every outcome checked (and its event decoded) before the first write.
-- plan lists the ARGV index of each outcome to apply; what some kinds need
-- besides (a retry's delay, a parked list's name, a decoded event) is kept
-- by that index in extra. No table per outcome: most are deliveries.
local plan, extra, refused, claimed = {}, {}, {}, {}
for i = 5, #ARGV, 4 do
  local kind, seq, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local why
  if not is_seq(seq) or #kind ~= 1 or not string.find('ARDIEKX', kind, 1, true) then
    return refuse('RECORD: bad kind or seq in group %d', (i - 1) / 4)
  end
  if kind == 'R' then
    extra[i] = int_arg(b, 0, DELAY_MAX)
    if #a == 0 or not extra[i] then return refuse('RECORD: bad retry for seq %s', seq) end
  elseif kind == 'D' or kind == 'I' or kind == 'E' then
    if #a == 0 then return refuse('RECORD: empty dead entry for seq %s', seq) end
  elseif kind == 'K' then
    if #a < 1 or #a > ORIGIN_MAX then return refuse('RECORD: bad origin for seq %s', seq) end
    extra[i] = parked .. ':' .. a
    why = wrong_type(extra[i], 'list')
  elseif kind == 'X' then
    extra[i], why = event_plan(a, ARGV[3], ARGV[4], claimed)
    if extra[i] and extra[i].ev.t ~= 'batch.create' and #b == 0 then
      return refuse('RECORD: event without a fallback for seq %s', seq)
    end
  end
  -- An outcome whose job is no longer in flight does nothing anyway (it
  -- was resent, or its job reclaimed): never refused, or the worker would
  -- hold it, and its slot, for as long as the key stays clobbered.
  if why and redis.call('HEXISTS', inflight, seq) == 1 then
    refused[#refused + 1] = seq
    refused[#refused + 1] = why
  else
    plan[#plan + 1] = i
  end
end

-- Checked; from here on, writes.
local c = {delivered = 0, failed_attempts = 0, retried = 0, dead = 0, invalid = 0, parked = 0,
  events = 0, batches = 0, generated = 0, skipped = 0, duplicate = 0, unknown_batch_retried = 0,
  calls_over_total = 0}
local t0
local function now()
  if not t0 then t0 = now_ms() end
  return t0
end
local applied = 0
local ev_keys = {queue = queue, retry = retry, dead = dead}
for _, i in ipairs(plan) do
  local kind, seq, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local job = kind == 'K' and redis.call('HGET', inflight, seq)
  if redis.call('HDEL', inflight, seq) == 1 then
    applied = applied + 1
    if kind == 'A' then c.delivered = c.delivered + 1
    elseif kind == 'R' then
      redis.call('ZADD', retry, now() + extra[i], a)
      c.failed_attempts = c.failed_attempts + 1
      c.retried = c.retried + 1
    elseif kind == 'K' then
      local body, _, crashes = unmark(job)
      redis.call('LPUSH', extra[i], mark(body, true, crashes))
      redis.call('ZADD', parked, 'NX', now(), a)
      c.parked = c.parked + 1
    elseif kind == 'X' then
      c.events = c.events + 1
      event_apply(c, extra[i], b, ev_keys, now)
    else
      redis.call('LPUSH', dead, a)
      if b ~= '' then redis.call('HSET', aside, wid .. ':' .. seq, b) end
      c.dead = c.dead + 1
      if kind == 'D' then c.failed_attempts = c.failed_attempts + 1 end
      if kind == 'I' then c.invalid = c.invalid + 1 end
    end
  end
end
if c.dead > 0 then trim_dead(dead, aside, stats, dead_max) end
for k, v in pairs(c) do if v > 0 then redis.call('HINCRBY', stats, k, v) end end
return {applied, refused}
