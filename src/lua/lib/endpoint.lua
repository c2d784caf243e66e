-- endpoint.lua: an origin's health record and what every change of it
-- writes (HEALTH, FETCH's probes, ENDPOINT_SET). Pasted after lib.lua.
--
-- P:endpoint:<origin> (hash): state (closed, open, half_open, disabled),
--   since (ms the state began), due (open: when a probe may go;
--   half_open: when the probe out is given up on), cooldown (ms, doubles
--   while probes fail), win_start, cur_n, cur_f, prev_n, prev_f (attempts
--   and failures in this window and the one before), failing_since (ms of
--   the first failure since the last answer that was no failure; 0 none),
--   attempts, failures, trips (totals), rate (failure rate in permille at
--   the last transition), reason (words). A closed record expires two
--   windows after its last attempt; any other state persists.
-- P:endpoints (hash): origin -> "<state> <since> <due>" for every origin
--   not closed; P:endpoints:gen (string) counts its changes, so workers
--   re-read it only when it changed.
-- P:events (stream, capped near events_max): event, origin, reason,
--   failure_rate, at (ms). With an ops webhook URL, each event is also
--   pushed onto P:queue as a job for it (msgpack: id, url, event, body).

local EP_NUM = {'since', 'due', 'cooldown', 'win_start', 'cur_n', 'cur_f', 'prev_n',
                'prev_f', 'failing_since', 'attempts', 'failures', 'trips', 'rate'}
local EP_STATES = {closed = true, open = true, half_open = true, disabled = true}
local EP_ORIGIN_MAX, EP_URL_MAX = 299, 4096

-- The record of key as a table, or nil and what is wrong with it (another
-- type, a field that is not a whole number, an unknown state).
local function ep_read(key)
  local w = wrong_type(key, 'hash')
  if w then return nil, w end
  local v = redis.call('HMGET', key, 'state', 'reason', unpack(EP_NUM))
  local e = {state = v[1] or 'closed', reason = v[2] or ''}
  if not EP_STATES[e.state] then
    return nil, 'key ' .. key .. ' holds state ' .. string.sub(e.state, 1, 40) ..
                '; fix or delete it'
  end
  for i, name in ipairs(EP_NUM) do
    local s = v[i + 2]
    if s and not (#s <= 16 and string.match(s, '^%d+$')) then
      return nil, 'field ' .. name .. ' of ' .. key .. ' is not a whole number; fix or delete it'
    end
    e[name] = tonumber(s or '0')
  end
  return e
end

-- Writes e back to key (a closed record expires, any other persists).
local function ep_write(key, e, expire_ms)
  local args = {'state', e.state, 'reason', e.reason}
  for _, name in ipairs(EP_NUM) do
    args[#args + 1] = name
    args[#args + 1] = string.format('%.0f', e[name])
  end
  redis.call('HSET', key, unpack(args))
  if e.state == 'closed' then redis.call('PEXPIRE', key, expire_ms)
  else redis.call('PERSIST', key) end
end

-- "<state> <since> <due>"; "closed 0 0" for a closed one, as HEALTH's
-- reply promises (a closed record keeps the since of its last close).
local function ep_line(e)
  if e.state == 'closed' then return 'closed 0 0' end
  return string.format('%s %.0f %.0f', e.state, e.since, e.due)
end

-- c: {endpoints, gen, events, queue, stats, parked, events_max, ops_url}.
-- A refusal when one of c's keys or settings is wrong, else nil.
-- A refusal unless P:endpoints:gen (of the right type) is absent or a
-- whole number INCR takes.
local function ep_check_gen(gen)
  local g = redis.call('GET', gen)
  if g and not (#g <= 16 and string.match(g, '^%d+$')) then
    return refuse('key %s holds %q, not a whole number; fix or delete it', gen,
                  string.sub(g, 1, 40))
  end
end

local function ep_check(c)
  local e = check_types({c.endpoints, 'hash', c.gen, 'string', c.events, 'stream',
                         c.queue, 'list', c.stats, 'hash', c.parked, 'zset'}) or
            ep_check_gen(c.gen)
  if e then return e end
  return check_counters(c.stats, {'breaker_opened', 'breaker_closed', 'endpoints_disabled',
                                  'endpoints_enabled'})
end

-- Publish origin's state to P:endpoints (a closed one leaves it).
local function ep_publish(c, origin, e)
  if e.state == 'closed' then redis.call('HDEL', c.endpoints, origin)
  else redis.call('HSET', c.endpoints, origin, ep_line(e)) end
  redis.call('INCR', c.gen)
end

-- Append event name for origin to P:events and, with an ops URL, push it as
-- a job. origin_json is the origin as a JSON string, written by the caller
-- in C (no Lua code escapes JSON); e holds the reason (hookd's own words
-- and digits) and the failure rate (permille) it reports.
local function ep_event(c, name, origin, origin_json, e, now)
  -- %.14g of a permille / 1000 is the shortest form, as JSON.stringify
  -- writes it: a receiver that re-serialises the body gets the same bytes.
  local rate = string.format('%.14g', e.rate / 1000)
  local id = redis.call('XADD', c.events, 'MAXLEN', '~', c.events_max, '*', 'event', name,
                        'origin', origin, 'reason', e.reason, 'failure_rate', rate,
                        'at', string.format('%.0f', now))
  if c.ops_url ~= '' then
    local body = '{"type":"' .. name .. '","id":"' .. id .. '","timestamp":' ..
                 string.format('%.0f', now) .. ',"data":{"origin":' .. origin_json ..
                 ',"reason":"' .. e.reason .. '","failure_rate":' .. rate .. '}}'
    redis.call('LPUSH', c.queue, cmsgpack.pack({id = 'evt_' .. id, url = c.ops_url,
                                                event = name, body = body}))
  end
end

-- Whether s is an origin and j that origin as a JSON string.
local function ep_origin_ok(s, j)
  return type(s) == 'string' and #s >= 1 and #s <= EP_ORIGIN_MAX and type(j) == 'string' and
         #j >= 2 and #j <= 6 * EP_ORIGIN_MAX + 2 and string.sub(j, 1, 1) == '"' and
         string.sub(j, -1) == '"'
end
