#!lua
-- ACCEPT: is each job's (id, destination) new within dedupe_window?
--
-- KEYS  1 inflight  hash  P:inflight:<wid>
--       2 stats     hash  P:stats
-- ARGV  1 seen prefix   P:seen
--       2 wid           the worker's id (1..127 bytes)
--       3 window        ms, 1..366 days
--       4.. pairs       seq, key (1..64 bytes: the 32 hex digits of
--                       SHA-256(id NUL url), dedupe.h); at most 500 pairs
--                       (QUEUE_ACCEPT_MAX)
-- Reply one integer per pair:
--       0  new: P:seen:<key> did not exist and now holds "<wid>:<seq>" for
--          the window, or already held exactly that (this call repeated
--          after a lost reply)
--       1  duplicate: another job holds the key; this one is removed from
--          flight (HDEL) and counted in duplicate, in the same step, so it
--          is never delivered and never lost without a trace
--       2  seq no longer in flight here (requeued meanwhile): not ours to
--          judge; nothing done
--       3  P:seen:<key> holds another type: nothing done (the worker
--          delivers the job unchecked and says so)
-- Refuses (error reply, nothing changed): a KEY of the wrong type, the
--       duplicate counter not a whole number, an argument malformed or out
--       of range.
--!include lib.lua

local ACCEPT_MAX, DAY = 500, 86400000
local inflight, stats = KEYS[1], KEYS[2]

local e = check_types({inflight, 'hash', stats, 'hash'})
if e then return e end
e = check_counters(stats, {'duplicate'})
if e then return e end
local prefix, wid, window = ARGV[1], ARGV[2], int_arg(ARGV[3], 1, 366 * DAY)
if not prefix or not wid or #wid < 1 or #wid > 127 or not window then
  return refuse('ACCEPT: bad prefix, wid or window')
end
if (#ARGV - 3) % 2 ~= 0 or (#ARGV - 3) / 2 > ACCEPT_MAX then
  return refuse('ACCEPT: expected up to %d seq, key pairs', ACCEPT_MAX)
end
for i = 4, #ARGV, 2 do
  if not is_seq(ARGV[i]) or #ARGV[i + 1] < 1 or #ARGV[i + 1] > 64 then
    return refuse('ACCEPT: bad seq or key at argument %d', i)
  end
end

-- Checked; from here on, writes. A key of another type cannot make SET NX
-- fail (the key exists: nothing is set), and its GET is a redis.pcall,
-- whose error is an answer (3), not the end of the script.
local out, dup = {}, 0
for i = 4, #ARGV, 2 do
  local seq, key = ARGV[i], prefix .. ':' .. ARGV[i + 1]
  local me, n = wid .. ':' .. seq, (i - 2) / 2
  if redis.call('HEXISTS', inflight, seq) == 0 then out[n] = 2
  elseif redis.call('SET', key, me, 'NX', 'PX', window) then out[n] = 0
  else
    local held = redis.pcall('GET', key)
    if type(held) == 'table' and held.err then out[n] = 3
    elseif held == me then out[n] = 0
    else
      redis.call('HDEL', inflight, seq)
      dup = dup + 1
      out[n] = 1
    end
  end
end
if dup > 0 then redis.call('HINCRBY', stats, 'duplicate', dup) end
return out
