#!lua flags=no-writes
-- BACKLOG: what the metrics process needs for the oldest ready job's age,
-- read at one instant (backlog.lua in lib/ says what the fields mean).
--
-- KEYS  1 queue    list  P:queue
--       2 backlog  hash  P:backlog
--       3 retry    zset  P:retry
-- Reply {LLEN queue, front, front_since, left_taken, the earliest retry's
--       due time or -1, now}: times in ms on Redis's clock; absent fields 0.
-- Refuses (error reply; it writes nothing): a KEY of the wrong type, a
--       P:backlog field not a whole number.
--!include lib.lua
--!include backlog.lua

local queue, backlog, retry = KEYS[1], KEYS[2], KEYS[3]

local e = check_types({queue, 'list', backlog, 'hash', retry, 'zset'}) or
          check_counters(backlog, BACKLOG_FIELDS)
if e then return e end
local v = redis.call('HMGET', backlog, unpack(BACKLOG_FIELDS))
local first = redis.call('ZRANGE', retry, 0, 0, 'WITHSCORES')[2]
return {redis.call('LLEN', queue), tonumber(v[1] or '0'), tonumber(v[2] or '0'),
        tonumber(v[3] or '0'), first and tonumber(first) or -1, now_ms()}
