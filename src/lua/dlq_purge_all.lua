#!lua flags=allow-oom
-- DLQ_PURGE_ALL: drop every dead-letter entry (hookd dlq purge --all).
--
-- KEYS  1 dead   list  P:dead
--       2 aside  hash  P:dead:secrets
--       3 stats  hash  P:stats
-- ARGV  none
-- Deletes P:dead and P:dead:secrets; counts purged.
-- Reply the number of entries dropped.
-- allow-oom: it only frees memory, which is what an operator whose Redis
--       reached maxmemory may be doing.
-- Refuses (error reply, nothing changed): a KEY of the wrong type, the
--       purged counter not a whole number.
--!include lib.lua

local dead, aside, stats = KEYS[1], KEYS[2], KEYS[3]
local e = check_types({dead, 'list', aside, 'hash', stats, 'hash'})
if e then return e end
e = check_counters(stats, {'purged'})
if e then return e end
local n = redis.call('LLEN', dead)
redis.call('DEL', dead, aside)
if n > 0 then redis.call('HINCRBY', stats, 'purged', n) end
return n
