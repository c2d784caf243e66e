#!lua
-- DLQ_MOVE: replay or purge dead-letter entries (hookd dlq replay / purge).
--
-- KEYS  1 dead   list  P:dead
--       2 queue  list  P:queue
--       3 aside  hash  P:dead:secrets
--       4 stats  hash  P:stats
-- ARGV  1 counter   'replayed' or 'purged'
--       2.. triples entry (the exact bytes in P:dead), job (to LPUSH onto
--                   the queue; '' = purge), dead_id ('' = none); at most
--                   200 (QUEUE_DLQ_MOVE_MAX)
-- Moves each entry still in P:dead (LREM, searching from the oldest end):
--       its job onto the queue, or nowhere; what was kept aside for it is
--       dropped. An entry already gone (moved by another call) does
--       nothing, so an interrupted or repeated run loses and doubles
--       nothing. Counts counter.
-- Reply the number of entries moved.
-- Refuses (error reply, nothing changed): a KEY of the wrong type, a bad
--       counter name or argument count, the counter not a whole number.
--!include lib.lua

local MOVE_MAX = 200
local dead, queue, aside, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local e = check_types({dead, 'list', queue, 'list', aside, 'hash', stats, 'hash'})
if e then return e end
local counter = ARGV[1]
if (counter ~= 'replayed' and counter ~= 'purged') or (#ARGV - 1) % 3 ~= 0 or
   (#ARGV - 1) / 3 > MOVE_MAX then
  return refuse('DLQ_MOVE: expected replayed|purged and up to %d triples', MOVE_MAX)
end
e = check_counters(stats, {counter})
if e then return e end

local n = 0
for i = 2, #ARGV, 3 do
  if redis.call('LREM', dead, -1, ARGV[i]) == 1 then
    if ARGV[i + 1] ~= '' then redis.call('LPUSH', queue, ARGV[i + 1]) end
    if ARGV[i + 2] ~= '' then redis.call('HDEL', aside, ARGV[i + 2]) end
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', stats, counter, n) end
return n
