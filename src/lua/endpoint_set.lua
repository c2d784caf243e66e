#!lua
-- ENDPOINT_SET: an operator enables or disables an origin by hand
-- (hookd endpoints enable|disable ORIGIN).
--
-- KEYS  1 endpoints  hash    P:endpoints
--       2 gen        string  P:endpoints:gen
--       3 events     stream  P:events
--       4 queue      list    P:queue (ops webhook jobs)
--       5 stats      hash    P:stats
--       6 parked     zset    P:parked
-- ARGV  1 prefix     P:endpoint (the origin's record is <prefix>:<origin>)
--       2 action     'enable' or 'disable'
--       3 origin     1..299 bytes
--       4 json       the origin as a JSON string (written in C)
--       5 events_max 1..2^40
--       6 ops_url    '' or the URL events are also delivered to (<= 4096)
--       7 window     ms, 1000..86400000 (breaker_window): a closed record
--                    expires 2 x window + 1 s after this call, as HEALTH's do
-- At Redis's time now:
--       enable: a record not closed becomes closed (since now, due 0,
--         cooldown 0, window counts and failing_since reset, reason
--         'enabled by operator'); it leaves P:endpoints (INCR gen); event
--         endpoint.enabled; counts endpoints_enabled; its parked jobs, if
--         any, are re-scored to now in P:parked (ZADD XX), so workers serve
--         them again. A closed or absent record: nothing is written.
--       disable: a record not disabled (absent ones too: an origin may be
--         disabled before hookd has tried it) becomes disabled (since now,
--         due 0, reason 'disabled by operator'; its counts are kept); it is
--         published in P:endpoints (INCR gen); event endpoint.disabled;
--         counts endpoints_disabled; parked jobs re-scored to now, so
--         workers drain them to dead as endpoint_disabled. Disabled
--         already: nothing is written.
--       The event's failure_rate is the record's rate (the last automatic
--       transition's), which neither action changes. Sent twice, the second
--       call changes nothing.
-- Reply {previous, current}: states ('none' for no record); equal when
--       nothing changed.
-- Refuses (error reply, nothing changed): a KEY or the origin's record of
--       the wrong type (or a record field malformed), gen or a counter not a
--       whole number, an argument malformed or out of range.
--!include lib.lua
--!include endpoint.lua

local c = {endpoints = KEYS[1], gen = KEYS[2], events = KEYS[3], queue = KEYS[4],
           stats = KEYS[5], parked = KEYS[6]}
local prefix, action, origin, json = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
c.events_max = int_arg(ARGV[5], 1, 2 ^ 40)
c.ops_url = ARGV[6]
local window = int_arg(ARGV[7], 1000, 86400000)
if #ARGV ~= 7 or type(prefix) ~= 'string' or #prefix < 1 or #prefix > 256 or
   (action ~= 'enable' and action ~= 'disable') or not ep_origin_ok(origin, json) or
   not c.events_max or type(c.ops_url) ~= 'string' or #c.ops_url > EP_URL_MAX or
   not window then
  return refuse('ENDPOINT_SET: arguments malformed or out of range')
end
local e = ep_check(c)
if e then return e end
local key = prefix .. ':' .. origin
local rec, why = ep_read(key)
if not rec then return refuse('%s', why) end
local was = redis.call('EXISTS', key) == 1 and rec.state or 'none'

if (action == 'enable' and rec.state == 'closed') or
   (action == 'disable' and rec.state == 'disabled') then
  return {was, was}
end

-- Checked; from here on, writes.
local now = now_ms()
local event, counter
if action == 'enable' then
  rec.state, rec.reason, rec.since, rec.due, rec.cooldown = 'closed', 'enabled by operator', now, 0, 0
  rec.win_start, rec.cur_n, rec.cur_f, rec.prev_n, rec.prev_f = 0, 0, 0, 0, 0
  rec.failing_since = 0
  event, counter = 'endpoint.enabled', 'endpoints_enabled'
else
  rec.state, rec.reason, rec.since, rec.due = 'disabled', 'disabled by operator', now, 0
  event, counter = 'endpoint.disabled', 'endpoints_disabled'
end
ep_write(key, rec, 2 * window + 1000)
ep_publish(c, origin, rec)
redis.call('ZADD', c.parked, 'XX', now, origin)
ep_event(c, event, origin, json, rec, now)
redis.call('HINCRBY', c.stats, counter, 1)
return {was, rec.state}
