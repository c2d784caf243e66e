#!lua
-- FETCH: move up to max jobs into a registered worker's in-flight hash.
--
-- KEYS  1 hb         string  P:hb:<wid>: the worker's heartbeat
--       2 queue      list    P:queue
--       3 inflight   hash    P:inflight:<wid>
--       4 parked     zset    P:parked: origins with parked jobs
--       5 stats      hash    P:stats
--       6 backlog    hash    P:backlog (backlog.lua)
--       7 endpoints  hash    P:endpoints (endpoint.lua)
--       8 gen        string  P:endpoints:gen
-- ARGV  1 base       integer >= 0; the jobs are filed under base+1 .. base+n
--       2 max        integer 0..10000 (QUEUE_FETCH_MAX, the largest
--                    fetch_batch)
--       3 prefix     P:endpoint: each origin's breaker is <prefix>:<origin>
--       4 probe_ms   1..86400000: how long a probe granted here may take
--       5.. pairs    origin (1..299 bytes), count (1..10000): parked jobs to
--                    take from P:parked:<origin> (at most max in all); at
--                    most 32 pairs; an origin named again is the same pull,
--                    its counts added
-- Moves up to max jobs, oldest first: the requested parked jobs of each
--       origin (they waited longest), then P:queue (RPOP with a count; of
--       those at most 64 MiB of job bytes in all, QUEUE_FETCH_BYTES_MAX,
--       but always one: the rest go back where they were), into inflight
--       as base+1 .. base+n. An origin pulled from is
--       re-scored (so origins take turns) or, its list empty, leaves
--       P:parked. Counts unparked; notes the jobs taken from P:queue in
--       P:backlog.
-- An origin whose breaker is open gives one job, the probe, once its due
--       time has passed (it turns half_open, due = now + probe_ms: a probe
--       whose outcome never comes, its worker killed, is granted again
--       after that), and none before: it is re-scored to its due time. A
--       half_open one gives one only once its probe is overdue. Its line in
--       P:endpoints is rewritten (INCR gen).
-- Only for a worker whose heartbeat key exists: the reaper forgets a
--       worker whose heartbeat expired (RECLAIM removes it from P:workers)
--       and never looks at it again, so jobs fetched after that, by a
--       worker that was only cut off and then died for good, would stay in
--       its in-flight hash forever. Such a worker registers again first.
-- Reply {jobs, origins, refused, gen, probes}: the n jobs in seq order;
--       up to 32 origins with parked jobs, least recently served first;
--       origin, reason pairs for each parked list left untouched because it
--       or its breaker record holds another type (re-scored, so it does
--       not hold up the others); P:endpoints:gen; the origins granted a
--       probe.
-- Refuses (error reply, nothing changed): the worker not registered
--       ("hookd: FETCH: not registered", exactly), a KEY of the wrong type,
--       the unparked counter or a P:backlog field not a whole number, an
--       argument malformed or out of range.
--!include lib.lua
--!include backlog.lua
--!include endpoint.lua

local FETCH_MAX, PULL_MAX, ORIGIN_MAX = 10000, 32, 299
local BYTES_MAX = 64 * 1024 * 1024
local hb, queue, inflight, parked, stats, backlog, endpoints, gen =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]

local e = check_types({hb, 'string', queue, 'list', inflight, 'hash', parked, 'zset',
                       stats, 'hash', backlog, 'hash', endpoints, 'hash', gen, 'string'})
if e then return e end
if redis.call('EXISTS', hb) == 0 then return redis.error_reply('hookd: FETCH: not registered') end
e = check_counters(stats, {'unparked'}) or check_counters(backlog, BACKLOG_FIELDS) or
    ep_check_gen(gen)
if e then return e end
local base = int_arg(ARGV[1], 0, 1e15)
local max = int_arg(ARGV[2], 0, FETCH_MAX)
local prefix, probe_ms = ARGV[3], int_arg(ARGV[4], 1, 86400000)
if not base or not max then
  return refuse('FETCH: base %s / max %s not integers in range (max <= %d)',
                tostring(ARGV[1]), tostring(ARGV[2]), FETCH_MAX)
end
if type(prefix) ~= 'string' or #prefix < 1 or #prefix > 256 or not probe_ms then
  return refuse('FETCH: endpoint prefix or probe_ms malformed')
end
if (#ARGV - 4) % 2 ~= 0 or (#ARGV - 4) / 2 > PULL_MAX then
  return refuse('FETCH: expected up to %d origin, count pairs', PULL_MAX)
end
local served = now_ms()
local pulls, refused, probes, named = {}, {}, {}, {}
for i = 5, #ARGV, 2 do
  local origin, count = ARGV[i], int_arg(ARGV[i + 1], 1, FETCH_MAX)
  if #origin < 1 or #origin > ORIGIN_MAX or not count then
    return refuse('FETCH: bad parked origin or count at argument %d', i)
  end
  local list, key = parked .. ':' .. origin, prefix .. ':' .. origin
  local rec, w = ep_read(key)
  w = wrong_type(list, 'list') or w
  -- An origin named again is one pull: its breaker grants one probe.
  local again = named[origin]
  if again ~= nil then
    if again and not again.held then again.count = again.count + count end
  elseif w then
    named[origin] = false
    refused[#refused + 1] = origin
    refused[#refused + 1] = w
  else
    local p = {origin = origin, list = list, count = count, key = key, e = rec,
               score = served}
    if rec.state == 'open' or rec.state == 'half_open' then
      p.held = true
      if served >= rec.due then p.count, p.probe = 1, true
      else p.count, p.score = 0, rec.due end
    end
    pulls[#pulls + 1] = p
    named[origin] = p
  end
end

-- Checked; from here on, writes.
local out, unparked = {}, 0
local function take(jobs)
  if jobs then for k = 1, #jobs do out[#out + 1] = jobs[k] end end
end
for _, p in ipairs(pulls) do
  local want = math.min(p.count, max - #out)
  if want > 0 then
    local before = #out
    take(redis.call('RPOP', p.list, want))
    unparked = unparked + #out - before
    if p.probe and #out > before then
      p.e.state, p.e.due = 'half_open', served + probe_ms
      if p.e.reason == '' then p.e.reason = 'probing' end
      ep_write(p.key, p.e, 0)         -- half_open persists: no expiry applies
      ep_publish({endpoints = endpoints, gen = gen}, p.origin, p.e)
      probes[#probes + 1] = p.origin
    end
  end
  if redis.call('EXISTS', p.list) == 0 then redis.call('ZREM', parked, p.origin)
  else redis.call('ZADD', parked, 'XX', p.score, p.origin) end
end
for i = 1, #refused, 2 do redis.call('ZADD', parked, 'XX', served, refused[i]) end
if #out < max then
  local before, bytes = #out, 0
  take(redis.call('RPOP', queue, max - #out))
  -- A reply of fetch_batch jobs of max_job_bytes each would be gigabytes.
  for k = before + 1, #out do
    bytes = bytes + #out[k]
    if bytes > BYTES_MAX and k > 1 then
      local back = {}
      for j = #out, k, -1 do
        back[#back + 1] = out[j]
        out[j] = nil
      end
      call_chunked('RPUSH', queue, back)
      break
    end
  end
  backlog_taken(backlog, queue, #out - before)
end
if #out > 0 then
  local args = {}
  for i = 1, #out do
    args[2 * i - 1] = string.format('%.0f', base + i)
    args[2 * i] = out[i]
  end
  call_chunked('HSET', inflight, args)
end
if unparked > 0 then redis.call('HINCRBY', stats, 'unparked', unparked) end
return {out, redis.call('ZRANGE', parked, 0, PULL_MAX - 1), refused,
        tonumber(redis.call('GET', gen) or '0'), probes}
