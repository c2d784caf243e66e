#!lua
-- PROMOTE: move due retries to the queue.
--
-- KEYS  1 retry  zset  P:retry
--       2 queue  list  P:queue
--       3 stats    hash  P:stats
--       4 backlog  hash  P:backlog (backlog.lua)
-- ARGV  1 limit  integer 1..4000 (QUEUE_PROMOTE_MAX)
-- Moves up to limit envelopes whose due time (score, ms on Redis's clock)
--       has come to the right end of the queue (taken next), earliest
--       rightmost. They are the lowest-ranked members, so they are removed
--       by rank (no member lookups: members are whole jobs). Counts
--       promoted; notes them in P:backlog as due since the earliest's score.
-- Reply {moved, ms until the next entry is due or -1}.
-- Refuses (error reply, nothing changed): a KEY of the wrong type, the
--       promoted counter or a P:backlog field not a whole number, a limit
--       out of range.
--!include lib.lua
--!include backlog.lua

local PROMOTE_MAX = 4000
local retry, queue, stats, backlog = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local e = check_types({retry, 'zset', queue, 'list', stats, 'hash', backlog, 'hash'})
if e then return e end
e = check_counters(stats, {'promoted'}) or check_counters(backlog, BACKLOG_FIELDS)
if e then return e end
local limit = int_arg(ARGV[1], 1, PROMOTE_MAX)
if not limit then return refuse('PROMOTE: limit must be 1..%d', PROMOTE_MAX) end
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', retry, '-inf', now, 'LIMIT', 0, limit)
local first = redis.call('ZRANGE', retry, 0, 0, 'WITHSCORES')[2]

-- Checked; from here on, writes.
if #due > 0 then
  redis.call('ZREMRANGEBYRANK', retry, 0, #due - 1)
  local rev = {}
  for i = #due, 1, -1 do rev[#rev + 1] = due[i] end
  call_chunked('RPUSH', queue, rev)
  redis.call('HINCRBY', stats, 'promoted', #due)
  backlog_pushed(backlog, #due, tonumber(first))
end
local nxt = redis.call('ZRANGE', retry, 0, 0, 'WITHSCORES')
local wait = -1
if nxt[2] then wait = math.max(0, tonumber(nxt[2]) - now) end
return {#due, wait}
