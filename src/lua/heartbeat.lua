#!lua flags=allow-oom
-- HEARTBEAT: a worker says it is alive.
--
-- KEYS  1 hb       string  P:hb:<wid>
--       2 workers  hash    P:workers
-- ARGV  1 wid   the worker's id (1..127 bytes)
--       2 ttl   ms, 1000..3600000 (heartbeat_ttl)
--       3 info  JSON about the worker (at most 1024 bytes)
--       4 now   the worker's clock, ms
-- Sets hb to now for ttl, then registers wid -> info in workers (hb first:
--       the reaper never finds a registered worker without a heartbeat).
-- Reply 1.
-- allow-oom: a heartbeat refused while Redis is at maxmemory would let it
--       expire, and once memory is freed the reapers would requeue the jobs
--       of live workers (duplicates). It writes a few dozen bytes.
-- Refuses (error reply, nothing changed): a KEY of the wrong type, an
--       argument malformed or out of range.
--!include lib.lua

local hb, workers = KEYS[1], KEYS[2]
local e = check_types({hb, 'string', workers, 'hash'})
if e then return e end
local wid, ttl, info, now = ARGV[1], int_arg(ARGV[2], 1000, 3600000), ARGV[3], ARGV[4]
if not wid or #wid < 1 or #wid > 127 or not ttl or not info or #info > 1024 or
   not int_arg(now, 0, 1e15) then
  return refuse('HEARTBEAT: bad wid, ttl, info or time')
end
redis.call('SET', hb, now, 'PX', ttl)
redis.call('HSET', workers, wid, info)
return 1
