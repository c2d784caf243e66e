#!lua
-- RECLAIM: put a worker's jobs back, and forget the worker.
--
-- No KEYS: the keys are built from the prefix (P below), because the
-- workers to reclaim are found inside the script (a single Redis, not
-- Cluster). They are P:queue (list), P:workers (hash), P:stats (hash),
-- P:dead (list), P:dead:secrets (hash), P:backlog (hash, backlog.lua),
-- and per worker P:claim:<wid>
-- (list), P:inflight:<wid> (hash), P:hb:<wid> (string).
-- ARGV  1 P             the prefix (1..64 bytes)
--       2 wid           one worker, or '' for every registered worker whose
--                       heartbeat key is gone (the reaper)
--       3 mode          'crashed': the worker died with these jobs in
--                       flight; 'clean': it stopped and hands them back
--       4 poison_after  integer 1..100
--       5 dead_max      integer 1..2^40
--       6 now           the caller's time, ISO-8601 (for dead entries)
-- Moves, per worker: its claimed jobs (never started) to the right end of
--       P:queue as they are, oldest rightmost; then its in-flight jobs in
--       seq order, marked accepted (marks.lua). In 'crashed' mode each
--       in-flight job's crash count goes up by one first, and a job that
--       reaches poison_after goes to P:dead instead, reason worker_crashed,
--       its bytes kept aside in P:dead:secrets (the entry shows its id and
--       url when they are plain text, never its secret), so that no job can
--       take down every worker in turn. Then deletes claim, inflight and
--       hb and unregisters the worker, in the same step: a job is always in
--       exactly one place. Counts requeued, dead and worker_crashed; trims
--       P:dead (dead.lua); notes the requeued jobs in P:backlog as due from
--       now.
-- Reply {requeued, dead, skipped}: skipped lists, for the reaper, workers
--       left alone because one of their keys holds another type (why).
-- Refuses (error reply, nothing changed): a shared key of the wrong type, a
--       counter in P:stats or a field of P:backlog not a whole number, the
--       one worker's key of the wrong type, an argument malformed.
--!include lib.lua
--!include marks.lua
--!include dead.lua
--!include backlog.lua

local p, only, mode = ARGV[1], ARGV[2], ARGV[3]
local poison_after, dead_max = int_arg(ARGV[4], 1, 100), int_arg(ARGV[5], 1, 2 ^ 40)
local now = ARGV[6]
if not p or #p < 1 or #p > 64 or not only or #only > 127 or
   (mode ~= 'crashed' and mode ~= 'clean') or not poison_after or not dead_max or
   not now or #now > 40 then
  return refuse('RECLAIM: bad prefix, wid, mode, poison_after, dead_max or time')
end
local queue, workers, stats, dead, aside, backlog = p .. ':queue', p .. ':workers',
  p .. ':stats', p .. ':dead', p .. ':dead:secrets', p .. ':backlog'
local e = check_types({queue, 'list', workers, 'hash', stats, 'hash', dead, 'list',
                       aside, 'hash', backlog, 'hash'}) or
          check_counters(stats, {'requeued', 'dead', 'worker_crashed', 'dead_trimmed'}) or
          check_counters(backlog, BACKLOG_FIELDS)
if e then return e end

-- The top level of a msgpack map as a table of its str, bin, integer,
-- boolean and nil values (others skipped), or nil. Written here because
-- Redis 7.0's cmsgpack rejects msgpack bin, which job.c writes for a retry
-- envelope's job and producers may use for a body.
local function mp_fields(s)
  local pos, value = 1, nil
  local function bytes(n)
    local v = string.sub(s, pos, pos + n - 1)
    if #v < n then error('short') end
    pos = pos + n
    return v
  end
  local function uint(n)
    local v = 0
    for i = 1, n do v = v * 256 + string.byte(bytes(1)) end
    return v
  end
  local function int(n)
    local v = uint(n)
    if v >= 2 ^ (8 * n - 1) then v = v - 2 ^ (8 * n) end
    return v
  end
  local function skip(n) for _ = 1, n do value() end end
  local sized = {[0xc4] = 1, [0xc5] = 2, [0xc6] = 4, [0xd9] = 1, [0xda] = 2, [0xdb] = 4}
  local fixext = {[0xd4] = 2, [0xd5] = 3, [0xd6] = 5, [0xd7] = 9, [0xd8] = 17}
  value = function()
    local b = uint(1)
    if b <= 0x7f then return b end
    if b >= 0xe0 then return b - 256 end
    if b >= 0xa0 and b <= 0xbf then return bytes(b - 0xa0) end
    if b >= 0x80 and b <= 0x8f then skip(2 * (b - 0x80)); return nil end
    if b >= 0x90 and b <= 0x9f then skip(b - 0x90); return nil end
    if sized[b] then return bytes(uint(sized[b])) end
    if b >= 0xcc and b <= 0xcf then return uint(2 ^ (b - 0xcc)) end
    if b >= 0xd0 and b <= 0xd3 then return int(2 ^ (b - 0xd0)) end
    if b == 0xc0 then return nil end
    if b == 0xc2 or b == 0xc3 then return b == 0xc3 end
    if b == 0xca or b == 0xcb then bytes(b == 0xca and 4 or 8); return nil end
    if b == 0xdc or b == 0xdd then skip(uint(b == 0xdc and 2 or 4)); return nil end
    if b == 0xde or b == 0xdf then skip(2 * uint(b == 0xde and 2 or 4)); return nil end
    if fixext[b] then bytes(fixext[b]); return nil end
    if b >= 0xc7 and b <= 0xc9 then bytes(uint(2 ^ (b - 0xc7)) + 1); return nil end
    error('bad')
  end
  local ok, t = pcall(function()
    local b, n = string.byte(s, 1), nil
    if b and b >= 0x80 and b <= 0x8f then pos = 2; n = b - 0x80
    elseif b == 0xde or b == 0xdf then pos = 2; n = uint(b == 0xde and 2 or 4)
    else return nil end
    local t = {}
    for _ = 1, n do
      local k, v = value(), value()
      if type(k) == 'string' then t[k] = v end
    end
    return t
  end)
  if ok then return t end
end

-- A JSON string for s when it is printable ASCII, else null: the entry must
-- stay valid JSON whatever bytes a job holds.
local function json_text(s)
  if type(s) == 'string' and #s <= 8192 and string.match(s, '^[ -~]+$') then
    return cjson.encode(s)
  end
  return 'null'
end

-- id, url and attempts of job bytes (a JSON or msgpack job, or a retry
-- envelope around one), read with Redis's own decoders, so a job that
-- crashes hookd's parser is still described. Anything unreadable is nil.
local function describe(body)
  local function decode(b)
    if string.byte(b, 1) ~= 123 then return mp_fields(b) end
    local ok, t = pcall(cjson.decode, b)
    if ok and type(t) == 'table' then return t end
  end
  local t = decode(body)
  if not t then return nil, nil, 0 end
  local id, attempts = t.id, 0
  if t._hookd ~= nil and type(t.job) == 'string' then
    attempts = tonumber(t.attempts) or 0
    t = decode(t.job) or {}
    if id == nil then id = t.id end
  end
  return id, t.url, attempts
end

-- Everything one worker's reclaim will do, computed before any write:
-- {wid, claim, inflight, hb, requeue = {...}, dead = {{entry, dead_id, aside}}}
local function plan_worker(wid)
  local w = {wid = wid, claim = p .. ':claim:' .. wid, inflight = p .. ':inflight:' .. wid,
             hb = p .. ':hb:' .. wid, requeue = {}, dead = {}}
  local why = wrong_type(w.claim, 'list') or wrong_type(w.inflight, 'hash') or
              wrong_type(w.hb, 'string')
  if why then return nil, why end
  for _, j in ipairs(redis.call('LRANGE', w.claim, 0, -1)) do w.requeue[#w.requeue + 1] = j end
  local all = redis.call('HGETALL', w.inflight)
  local items = {}
  for i = 1, #all, 2 do items[#items + 1] = {tonumber(all[i]) or 0, all[i], all[i + 1]} end
  table.sort(items, function(a, b) return a[1] > b[1] end)
  for _, it in ipairs(items) do
    local body, _, crashes = unmark(it[3])
    if mode == 'crashed' then crashes = crashes + 1 end
    if crashes >= poison_after and mode == 'crashed' then
      local did = wid .. ':' .. it[2]
      local id, url, attempts = describe(body)
      local entry = '{"dead_id":' .. cjson.encode(did) .. ',"id":' .. json_text(id) ..
        ',"reason":"worker_crashed","error":' ..
        cjson.encode(string.format('in flight in %d workers that died (poison_after %d); ' ..
                                   'not attempted again', crashes, poison_after)) ..
        ',"gave_up":"worker_crashed","status":0,"attempts":' .. string.format('%d', attempts) ..
        ',"crashes":' .. crashes .. ',"dead_at":' .. cjson.encode(now) ..
        ',"worker":' .. cjson.encode(wid) .. ',"url":' .. json_text(url) ..
        ',"job":null,"raw_aside":true}'
      w.dead[#w.dead + 1] = {entry, did, '\193' .. cmsgpack.pack({raw = body})}
    else
      w.requeue[#w.requeue + 1] = mark(body, true, crashes)
    end
  end
  return w
end

local plans, skipped = {}, {}
if only ~= '' then
  local w, why = plan_worker(only)
  if not w then return refuse('%s', why) end
  plans[1] = w
else
  for _, wid in ipairs(redis.call('HKEYS', workers)) do
    -- A heartbeat of another type is no heartbeat, but not proof of death
    -- either: that worker is skipped, and said so.
    local hb = redis.call('TYPE', p .. ':hb:' .. wid).ok
    if hb ~= 'string' then
      local w, why = plan_worker(wid)
      if w then plans[#plans + 1] = w else skipped[#skipped + 1] = wid .. ': ' .. why end
    end
  end
end

-- Checked; from here on, writes.
local requeued, died = 0, 0
for _, w in ipairs(plans) do
  if #w.requeue > 0 then call_chunked('RPUSH', queue, w.requeue) end
  for _, d in ipairs(w.dead) do
    redis.call('LPUSH', dead, d[1])
    redis.call('HSET', aside, d[2], d[3])
  end
  redis.call('DEL', w.inflight, w.claim, w.hb)
  redis.call('HDEL', workers, w.wid)
  requeued = requeued + #w.requeue
  died = died + #w.dead
end
if requeued > 0 then
  redis.call('HINCRBY', stats, 'requeued', requeued)
  backlog_pushed(backlog, requeued, now_ms())
end
if died > 0 then
  redis.call('HINCRBY', stats, 'dead', died)
  redis.call('HINCRBY', stats, 'worker_crashed', died)
  trim_dead(dead, aside, stats, dead_max)
end
return {requeued, died, skipped}
