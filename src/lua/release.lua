#!lua
-- RELEASE: give back the jobs of a fetch whose reply was lost.
--
-- KEYS  1 inflight  hash  P:inflight:<wid>
--       2 queue     list  P:queue
--       3 stats     hash  P:stats
--       4 backlog   hash  P:backlog (backlog.lua)
-- ARGV  1 lo, 2 hi  seqs, 1 <= lo <= hi, at most 10000 of them (one fetch)
-- Moves the jobs still in inflight under lo..hi to the right end of the
--       queue (taken next), oldest rightmost, as they were (no mark: the
--       worker never saw them). Counts requeued; notes them in P:backlog
--       as due from now.
-- Reply the number moved.
-- Refuses (error reply, nothing changed): a KEY of the wrong type, the
--       requeued counter or a P:backlog field not a whole number, a bad
--       range.
--!include lib.lua
--!include backlog.lua

local FETCH_MAX = 10000
local inflight, queue, stats, backlog = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local e = check_types({inflight, 'hash', queue, 'list', stats, 'hash', backlog, 'hash'})
if e then return e end
e = check_counters(stats, {'requeued'}) or check_counters(backlog, BACKLOG_FIELDS)
if e then return e end
local lo, hi = int_arg(ARGV[1], 1, 1e15), int_arg(ARGV[2], 1, 1e15)
if not lo or not hi or hi < lo or hi - lo >= FETCH_MAX then
  return refuse('RELEASE: bad seq range %s..%s', tostring(ARGV[1]), tostring(ARGV[2]))
end
local seqs, jobs = {}, {}
for s = hi, lo, -1 do
  local seq = string.format('%.0f', s)
  local j = redis.call('HGET', inflight, seq)
  if j then
    seqs[#seqs + 1] = seq
    jobs[#jobs + 1] = j
  end
end

-- Checked; from here on, writes.
if #jobs > 0 then
  call_chunked('RPUSH', queue, jobs)
  call_chunked('HDEL', inflight, seqs)
  redis.call('HINCRBY', stats, 'requeued', #jobs)
  backlog_pushed(backlog, #jobs, now_ms())
end
return #jobs
