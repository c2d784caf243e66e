-- event.lua: Dialgen typed jobs, applied by RECORD kind X. Needs lib.lua.
--
-- ev is the map event_encode() (event.c) packed; fallback the retry
-- envelope or dead entry used when the batch is not registered. The batch
-- is the hash P:batch:<id> (fields: docs/DESIGN.md), its counted calls the
-- set P:batch:<id>:calls; both expire after batch_ttl. Webhooks are pushed
-- onto the queue as plain msgpack jobs built from the batch's URLs and
-- secret, with ids derived from the batch and call ids. Payload strings
-- arrive as JSON fragments rendered by hookd, so nothing here escapes JSON;
-- numbers are integers, written with %d.
--
-- A call is counted only if SADD added its id (counting twice is
-- impossible); the call that makes processed reach total, in a batch not
-- failed, sets completedAt and pushes batch.completed, in the same script,
-- so exactly one call can do it. Percentages are integers rounded half up,
-- as event_percent() in C.

-- Limits as event.c and job.h set them: batch and call ids (EVENT_ID_MAX),
-- agent and user ids, the job's own id (JOB_ID_MAX), URLs (POLICY_URL_MAX).
local BATCH_ID_MAX, AGENT_ID_MAX, JOB_ID_MAX, URL_MAX = 100, 1024, 256, 8192
local TTL_MAX = 366 * 86400000

local function is_str(v, max) return type(v) == 'string' and #v >= 1 and #v <= max end
local function is_int(v, lo, hi)
  return type(v) == 'number' and v == math.floor(v) and v >= lo and v <= hi
end

-- The event's keys and whether it can be applied: {ev, bkey, calls, seen}
-- or nil and what is wrong. Reads only. claimed maps each key an event
-- planned earlier in the same call will write to the type it will hold
-- (events of one call can name the same keys); this plan's keys are added.
local function event_plan(packed, batch_prefix, seen_prefix, claimed)
  local ok, ev = pcall(cmsgpack.unpack, packed)
  if not ok or type(ev) ~= 'table' then return nil, 'event is not a msgpack map' end
  local t = ev.t
  if not is_str(ev.b, BATCH_ID_MAX) or not is_str(ev.now, 64) or
     not is_int(ev.win, 0, TTL_MAX) or not is_int(ev.ttl, 0, TTL_MAX) or
     (ev.eid ~= nil and not is_str(ev.eid, JOB_ID_MAX)) then
    return nil, 'event map lacks its common fields'
  end
  if t == 'batch.create' then
    if not is_str(ev.agent, AGENT_ID_MAX) or not is_str(ev.user, AGENT_ID_MAX) or
       not is_int(ev.total, 1, 1e8) or not is_str(ev.created, 64) or
       type(ev.jb) ~= 'string' or type(ev.ju) ~= 'string' or ev.ttl < 1 or
       (ev.secret ~= nil and not is_str(ev.secret, 1e9)) then
      return nil, 'batch.create map is incomplete'
    end
    for _, f in ipairs({'on_complete', 'on_call', 'on_failed'}) do
      if ev[f] ~= nil and not is_str(ev[f], URL_MAX) then
        return nil, 'batch.create map has a bad ' .. f
      end
    end
  elseif t == 'call.completed' or t == 'batch.failed' then
    if (ev.fb ~= 'R' and ev.fb ~= 'D') or not is_int(ev.delay, -1, TTL_MAX) then
      return nil, 'event map lacks its fallback'
    end
    if t == 'call.completed' and (not is_str(ev.call, BATCH_ID_MAX) or
                                  not is_int(ev.ok, 0, 1) or type(ev.body) ~= 'string') then
      return nil, 'call.completed map is incomplete'
    end
    if t == 'batch.failed' and (type(ev.ec) ~= 'string' or type(ev.error) ~= 'string' or
                                type(ev.code) ~= 'string') then
      return nil, 'batch.failed map is incomplete'
    end
  else
    return nil, 'unknown event type ' .. tostring(t)
  end
  local p = {ev = ev, bkey = batch_prefix .. ':' .. ev.b}
  p.calls = p.bkey .. ':calls'
  if ev.eid and ev.win > 0 then p.seen = seen_prefix .. ':' .. ev.eid end
  local want = {{p.bkey, 'hash'}, {p.calls, 'set'}}
  if p.seen then want[3] = {p.seen, 'string'} end
  for _, kt in ipairs(want) do
    local w = wrong_type(kt[1], kt[2])
    if not w and claimed[kt[1]] and claimed[kt[1]] ~= kt[2] then
      w = 'key ' .. kt[1] .. ' is made a ' .. claimed[kt[1]] .. ' by an earlier event'
    end
    if w then return nil, w end
  end
  -- A call is counted into an existing batch hash's counters, which must
  -- all be there (a hash written by hand may lack them).
  local h = redis.call('HMGET', p.bkey, 'total', 'processed', 'succeeded', 'failed')
  if h[1] or h[2] or h[3] or h[4] or
     (t == 'call.completed' and redis.call('EXISTS', p.bkey) == 1) then
    for i, f in ipairs({'total', 'processed', 'succeeded', 'failed'}) do
      if not (h[i] and string.match(h[i], '^%d+$')) then
        return nil, 'batch ' .. p.bkey .. ' has no whole number in ' .. f .. '; fix or delete it'
      end
    end
  end
  for _, kt in ipairs(want) do claimed[kt[1]] = kt[2] end
  return p
end

local function pct(n, d) if d == 0 then return 0 end return math.floor((200 * n + d) / (2 * d)) end

local function emit(c, queue, event, url, id, body, secret)
  if not url then c.skipped = c.skipped + 1; return end
  local j = {id = id, url = url, event = event, body = body}
  if secret then j.secret = secret end
  redis.call('LPUSH', queue, cmsgpack.pack(j))
  c.generated = c.generated + 1
end

-- Apply a planned event (event_plan). keys: {queue, retry, dead}. Writes.
local function event_apply(c, p, fallback, keys, now)
  local ev, bkey, calls = p.ev, p.bkey, p.calls
  if p.seen and redis.call('EXISTS', p.seen) == 1 then c.duplicate = c.duplicate + 1; return end
  local exists = redis.call('EXISTS', bkey) == 1
  if ev.t == 'batch.create' then
    if exists then c.duplicate = c.duplicate + 1; return end
    redis.call('HSET', bkey, 'batchId', ev.b, 'agentId', ev.agent, 'userId', ev.user,
      'total', ev.total, 'processed', 0, 'succeeded', 0, 'failed', 0, 'createdAt', ev.created,
      'jb', ev.jb, 'ju', ev.ju)
    for _, f in ipairs({'secret', 'on_complete', 'on_call', 'on_failed'}) do
      if ev[f] then redis.call('HSET', bkey, f, ev[f]) end
    end
    redis.call('PEXPIRE', bkey, ev.ttl)
    c.batches = c.batches + 1
  elseif not exists then
    if ev.fb == 'R' then
      redis.call('ZADD', keys.retry, now() + ev.delay, fallback)
      c.unknown_batch_retried = c.unknown_batch_retried + 1
    else
      redis.call('LPUSH', keys.dead, fallback)
      c.dead = c.dead + 1
    end
    return
  else
    local h = redis.call('HMGET', bkey, 'total', 'processed', 'succeeded', 'failed', 'startedAt',
      'completedAt', 'failedAt', 'secret', 'on_complete', 'on_call', 'on_failed', 'jb', 'ju',
      'createdAt')
    local total, n, s, f = tonumber(h[1]), tonumber(h[2]), tonumber(h[3]), tonumber(h[4])
    if ev.t == 'call.completed' then
      if redis.call('SADD', calls, ev.call) == 0 then c.duplicate = c.duplicate + 1; return end
      local ttl = redis.call('PTTL', bkey)
      if ttl > 0 then redis.call('PEXPIRE', calls, ttl) end
      emit(c, keys.queue, 'call.completed', h[10], 'call.completed:' .. ev.b .. ':' .. ev.call,
           ev.body, h[8])
      if n >= total then c.calls_over_total = c.calls_over_total + 1
      else
        n = n + 1
        if ev.ok == 1 then s = s + 1 else f = f + 1 end
        redis.call('HSET', bkey, 'processed', n, 'succeeded', s, 'failed', f)
        local started = h[5]
        if not started then started = ev.now; redis.call('HSET', bkey, 'startedAt', started) end
        if n == total and not h[7] and not h[6] then
          redis.call('HSET', bkey, 'completedAt', ev.now)
          local body = '{"event":"batch.completed",' .. (h[12] or '') .. ',' .. (h[13] or '') ..
            string.format(',"statistics":{"total":%d,"processed":%d,"succeeded":%d,"failed":%d,' ..
              '"percentComplete":%d,"successRate":%d}', total, n, s, f, pct(n, total), pct(s, n)) ..
            ',"timestamps":{"createdAt":"' .. (h[14] or '') .. '","startedAt":"' .. started ..
            '","completedAt":"' .. ev.now .. '"}}'
          emit(c, keys.queue, 'batch.completed', h[9], 'batch.completed:' .. ev.b, body, h[8])
        end
      end
    else
      if redis.call('HSETNX', bkey, 'failedAt', ev.now) == 0 then c.duplicate = c.duplicate + 1; return end
      redis.call('HSET', bkey, 'error', ev.error, 'code', ev.code)
      local body = '{"event":"batch.failed",' .. (h[12] or '') .. ',' .. ev.ec ..
        ',"timestamp":"' .. ev.now .. '"}'
      emit(c, keys.queue, 'batch.failed', h[11], 'batch.failed:' .. ev.b, body, h[8])
    end
  end
  if p.seen then redis.call('SET', p.seen, 1, 'PX', ev.win) end
end
