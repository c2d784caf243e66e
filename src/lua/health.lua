#!lua
-- HEALTH: count a batch of attempts per origin and move each origin's
-- breaker (closed -> open -> half_open -> closed; any -> disabled).
--
-- KEYS  1 endpoints  hash    P:endpoints
--       2 gen        string  P:endpoints:gen
--       3 events     stream  P:events
--       4 queue      list    P:queue (ops webhook jobs)
--       5 stats      hash    P:stats
--       6 parked     zset    P:parked
-- ARGV  1 prefix     P:endpoint (each origin's record is <prefix>:<origin>)
--       2 breaker    0 or 1
--       3 window     ms, 1000..86400000 (breaker_window)
--       4 min        1..1000000 (breaker_min_requests)
--       5 threshold  percent, 1..100 (breaker_failure_threshold)
--       6 cooldown   ms, 100..86400000 (breaker_cooldown)
--       7 cooldown_max  ms, 100..86400000 (breaker_cooldown_max; below
--                    cooldown counts as cooldown)
--       8 disable_after  ms, 0..31622400000 (0 = never)
--       9 events_max 1..2^40
--      10 ops_url    '' or the URL events are also delivered to (<= 4096)
--      11.. groups of 5, at most 500: origin (1..299 bytes), the origin as
--                    a JSON string, answers that were no failure (0..1e9),
--                    failures (0..1e9), probe: '0' none, '1' the probe
--                    succeeded, '2' it failed; an origin named again
--                    adds to its first group (a probe other than '0' wins)
-- For each origin, at Redis's time now: counts the attempts into its
--       window; a failure starts failing_since, an answer that is no
--       failure clears it. Then
--       closed: opens (event endpoint.breaker_opened, due = now +
--         cooldown) when breaker is on and, over the sliding window, at
--         least min attempts failed at threshold percent or more;
--       half_open: the probe's success closes it (endpoint.breaker_closed,
--         window counts reset); its failure reopens it, silently, with the
--         cooldown doubled up to cooldown_max;
--       open, half_open with breaker off: an answer that is no failure
--         closes it;
--       any state but disabled: failing for disable_after (not 0) disables
--         it (endpoint.disabled).
--       A transition rewrites its line in P:endpoints (INCR gen), re-scores
--       the origin in P:parked if it has parked jobs (open: to due, so
--       other origins' parked jobs are served first; disabled or closed:
--       now, so they are drained or served), and counts breaker_opened,
--       breaker_closed or endpoints_disabled.
-- Reply {gen, {origin, line, ...}, {origin, reason, ...}}: the current
--       generation; for each origin counted, its line ("closed 0 0" when
--       closed); origins left uncounted because their record is clobbered.
-- Refuses (error reply, nothing changed): a KEY of the wrong type, gen or a
--       counter not a whole number, an argument malformed or out of range.
--!include lib.lua
--!include endpoint.lua

local GROUPS_MAX = 500
local c = {endpoints = KEYS[1], gen = KEYS[2], events = KEYS[3], queue = KEYS[4],
           stats = KEYS[5], parked = KEYS[6]}
local prefix = ARGV[1]
local breaker = int_arg(ARGV[2], 0, 1)
local window = int_arg(ARGV[3], 1000, 86400000)
local min = int_arg(ARGV[4], 1, 1000000)
local threshold = int_arg(ARGV[5], 1, 100)
local cooldown = int_arg(ARGV[6], 100, 86400000)
local cooldown_max = int_arg(ARGV[7], 100, 86400000)
local disable_after = int_arg(ARGV[8], 0, 31622400000)
c.events_max = int_arg(ARGV[9], 1, 2 ^ 40)
c.ops_url = ARGV[10]
if type(prefix) ~= 'string' or #prefix < 1 or #prefix > 256 or not breaker or not window or
   not min or not threshold or not cooldown or not cooldown_max or not disable_after or
   not c.events_max or type(c.ops_url) ~= 'string' or #c.ops_url > EP_URL_MAX then
  return refuse('HEALTH: settings malformed or out of range')
end
if cooldown_max < cooldown then cooldown_max = cooldown end
if (#ARGV - 10) % 5 ~= 0 or (#ARGV - 10) / 5 > GROUPS_MAX then
  return refuse('HEALTH: expected up to %d groups of origin, json, ok, failed, probe',
                GROUPS_MAX)
end
local e = ep_check(c)
if e then return e end

local now = now_ms()
local plans, refused, named = {}, {}, {}
for i = 11, #ARGV, 5 do
  local origin, json = ARGV[i], ARGV[i + 1]
  local ok, failed = int_arg(ARGV[i + 2], 0, 1e9), int_arg(ARGV[i + 3], 0, 1e9)
  local probe = ARGV[i + 4]
  if not ep_origin_ok(origin, json) or not ok or not failed or
     (probe ~= '0' and probe ~= '1' and probe ~= '2') then
    return refuse('HEALTH: bad group at argument %d', i)
  end
  local key = prefix .. ':' .. origin
  -- An origin named again adds to its first group: each plan holds the
  -- record as read here, so a second plan would overwrite the first.
  local again = named[origin]
  if again then
    again.ok, again.failed = again.ok + ok, again.failed + failed
    if probe ~= '0' then again.probe = probe end
  elseif again == nil then
    local rec, why = ep_read(key)
    if rec then
      plans[#plans + 1] = {origin = origin, json = json, key = key, e = rec, ok = ok,
                           failed = failed, probe = probe}
      named[origin] = plans[#plans]
    else
      named[origin] = false
      refused[#refused + 1] = origin
      refused[#refused + 1] = why
    end
  end
end

-- The window slides: the previous window's counts fade out linearly.
local function count(e, ok, failed)
  local el = now - e.win_start
  if e.win_start == 0 or el >= 2 * window then
    e.prev_n, e.prev_f, e.cur_n, e.cur_f, e.win_start = 0, 0, 0, 0, now
  elseif el >= window then
    e.prev_n, e.prev_f, e.cur_n, e.cur_f = e.cur_n, e.cur_f, 0, 0
    e.win_start = e.win_start + window
  end
  e.cur_n, e.cur_f = e.cur_n + ok + failed, e.cur_f + failed
  e.attempts, e.failures = e.attempts + ok + failed, e.failures + failed
  local w = 1 - (now - e.win_start) / window
  return e.prev_n * w + e.cur_n, e.prev_f * w + e.cur_f
end

local function permille(f, n)
  if n <= 0 then return 0 end
  return math.floor(1000 * f / n + 0.5)
end

-- Checked; from here on, writes.
local counts = {breaker_opened = 0, breaker_closed = 0, endpoints_disabled = 0}
local COUNTERS = {['endpoint.breaker_opened'] = 'breaker_opened',
                  ['endpoint.breaker_closed'] = 'breaker_closed',
                  ['endpoint.disabled'] = 'endpoints_disabled'}
local lines = {}
for _, p in ipairs(plans) do
  local e, was = p.e, p.e.state
  local n, f = count(e, p.ok + (p.probe == '1' and 1 or 0), p.failed + (p.probe == '2' and 1 or 0))
  if p.ok > 0 or p.probe == '1' then e.failing_since = 0
  elseif e.failing_since == 0 and (p.failed > 0 or p.probe == '2') then e.failing_since = now end
  local events, score = {}, nil
  -- An event as of now: one call may open a breaker and disable it too.
  local function note(name) events[#events + 1] = {name, {reason = e.reason, rate = e.rate}} end
  if e.state == 'closed' then
    if breaker == 1 and n >= min and f * 100 >= threshold * n then
      e.state, e.since, e.cooldown, e.trips = 'open', now, cooldown, e.trips + 1
      e.due, e.rate = now + cooldown, permille(f, n)
      e.reason = string.format('%d%% of %d attempts failed within %d s',
                               math.floor(e.rate / 10 + 0.5), math.floor(n + 0.5), window / 1000)
      note('endpoint.breaker_opened')
      score = e.due
    end
  elseif e.state == 'half_open' and breaker == 1 and p.probe ~= '0' then
    if p.probe == '1' then
      e.state, e.since, e.due, e.cooldown, e.rate = 'closed', now, 0, 0, permille(f, n)
      e.prev_n, e.prev_f, e.cur_n, e.cur_f, e.win_start = 0, 0, 0, 0, now
      e.reason = 'a probe succeeded'
      note('endpoint.breaker_closed')
      score = now
    else
      e.state, e.cooldown = 'open', math.min(e.cooldown * 2, cooldown_max)
      e.due = now + e.cooldown
      e.reason = string.format('a probe failed; next in %d s', math.floor(e.cooldown / 1000))
      score = e.due
    end
  elseif (e.state == 'open' or e.state == 'half_open') and breaker == 0 and
         (p.ok > 0 or p.probe == '1') then
    e.state, e.since, e.due, e.cooldown, e.rate = 'closed', now, 0, 0, permille(f, n)
    e.reason = 'an attempt succeeded with the breaker off'
    note('endpoint.breaker_closed')
    score = now
  end
  if e.state ~= 'disabled' and disable_after > 0 and e.failing_since > 0 and
     now - e.failing_since >= disable_after then
    e.state, e.since, e.due, e.rate = 'disabled', now, 0, permille(f, n)
    e.reason = string.format('failing for %d s (disable_after)',
                             math.floor((now - e.failing_since) / 1000))
    note('endpoint.disabled')
    score = now
  end
  ep_write(p.key, e, 2 * window + 1000)
  if e.state ~= was then ep_publish(c, p.origin, e)
  elseif e.state == 'open' and score then ep_publish(c, p.origin, e) end
  if score then redis.call('ZADD', c.parked, 'XX', score, p.origin) end
  for _, ev in ipairs(events) do
    ep_event(c, ev[1], p.origin, p.json, ev[2], now)
    local counter = COUNTERS[ev[1]]
    counts[counter] = counts[counter] + 1
  end
  lines[#lines + 1] = p.origin
  lines[#lines + 1] = ep_line(e)
end
for _, name in ipairs({'breaker_opened', 'breaker_closed', 'endpoints_disabled'}) do
  if counts[name] > 0 then redis.call('HINCRBY', c.stats, name, counts[name]) end
end
return {tonumber(redis.call('GET', c.gen) or '0'), lines, refused}
