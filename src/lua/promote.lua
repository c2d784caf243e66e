#!lua
-- PROMOTE: move due retries to the queue.
--
-- KEYS  1 retry  zset  P:retry
--       2 queue  list  P:queue
--       3 stats  hash  P:stats
-- ARGV  1 limit  integer 1..4000 (QUEUE_PROMOTE_MAX)
-- Moves up to limit envelopes whose due time (score, ms on Redis's clock)
--       has come to the right end of the queue (taken next), earliest
--       rightmost. They are the lowest-ranked members, so they are removed
--       by rank (no member lookups: members are whole jobs). Counts promoted.
-- Reply {moved, ms until the next entry is due or -1}.
-- Refuses (error reply, nothing changed): a KEY of the wrong type, the
--       promoted counter not a whole number, a limit out of range.
--!include lib.lua

local PROMOTE_MAX = 4000
local retry, queue, stats = KEYS[1], KEYS[2], KEYS[3]

local e = check_types({retry, 'zset', queue, 'list', stats, 'hash'})
if e then return e end
e = check_counters(stats, {'promoted'})
if e then return e end
local limit = int_arg(ARGV[1], 1, PROMOTE_MAX)
if not limit then return refuse('PROMOTE: limit must be 1..%d', PROMOTE_MAX) end
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', retry, '-inf', now, 'LIMIT', 0, limit)

-- Checked; from here on, writes.
if #due > 0 then
  redis.call('ZREMRANGEBYRANK', retry, 0, #due - 1)
  local rev = {}
  for i = #due, 1, -1 do rev[#rev + 1] = due[i] end
  call_chunked('RPUSH', queue, rev)
  redis.call('HINCRBY', stats, 'promoted', #due)
end
local nxt = redis.call('ZRANGE', retry, 0, 0, 'WITHSCORES')
local wait = -1
if nxt[2] then wait = math.max(0, tonumber(nxt[2]) - now) end
return {#due, wait}
