#!lua flags=no-writes
-- ENDPOINT_COUNTS: how many origins are in each state, for the metrics
-- process's hookd_endpoints{state} gauges, read at one instant.
--
-- KEYS  1 endpoints  hash  P:endpoints
--       2 throttled  zset  P:throttled
--       3 parked     zset  P:parked
-- Reply {open, half_open, disabled, throttled, parked, complete}: entries of
--       P:endpoints by state (the first word of each line); members of
--       P:throttled scored from now on (their slots have not run out);
--       origins in P:parked; complete is 1, or 0 when P:endpoints holds more
--       than 10,000 entries and only about the first 10,000 (HSCAN, 1,000 a
--       step) were counted.
-- Cost: bounded, so a look once a second cannot stall Redis: at most about
--       11,000 entries of P:endpoints read, a ZCOUNT (O(log n)), a ZCARD.
-- Refuses (error reply; it writes nothing): a KEY of the wrong type.
--!include lib.lua

local READ_MAX = 10000
local endpoints, throttled, parked = KEYS[1], KEYS[2], KEYS[3]
local e = check_types({endpoints, 'hash', throttled, 'zset', parked, 'zset'})
if e then return e end
local n = {open = 0, half_open = 0, disabled = 0}
local function tally(lines, from, step)
  for i = from, #lines, step do
    local state = string.match(lines[i], '^(%S+)')
    if state and n[state] then n[state] = n[state] + 1 end
  end
end
local complete = redis.call('HLEN', endpoints) <= READ_MAX
if complete then
  tally(redis.call('HVALS', endpoints), 1, 1)
else
  local cursor, read = '0', 0
  repeat
    local r = redis.call('HSCAN', endpoints, cursor, 'COUNT', 1000)
    cursor, read = r[1], read + #r[2] / 2
    tally(r[2], 2, 2)
  until cursor == '0' or read >= READ_MAX
end
local now = now_ms()
return {n.open, n.half_open, n.disabled,
        redis.call('ZCOUNT', throttled, '(' .. string.format('%.0f', now), '+inf'),
        redis.call('ZCARD', parked), complete and 1 or 0}
