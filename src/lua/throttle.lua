#!lua
-- THROTTLE: delivery slots for rate-limited origins, shared by every worker
-- on every host (GCRA over Redis's clock).
--
-- KEYS  1 throttled  zset  P:throttled: origin -> ms when the slots granted
--                    to it run out, for origins that had to wait
-- ARGV  1 prefix     P:rate (an origin's record is <prefix>:<origin>)
--       2.. triples, at most 200 (QUEUE_THROTTLE_MAX): origin (1..299
--                    bytes), interval (us between deliveries, 1..60000000),
--                    count (slots wanted, 1..10000)
-- For each triple, at Redis's time now (us): the interval used is the
--       larger of the one asked for and the one stored, if that was asked
--       for within FORGET (5 minutes): the lowest rate seen wins, and an
--       old low rate is forgotten 5 minutes after the last call carrying
--       it. The slots are s_i = max(tat, now) + i * interval for i = 0, 1,
--       ... while s_i < now + HORIZON and i < count; tat moves past the
--       last slot granted. Spaced, never a burst: an origin idle for a
--       while gets its first slot now and the next one interval later.
--       The record (hash: tat, interval, until; all us) expires FORGET
--       after max(tat, until): an origin gone quiet leaves nothing behind.
--       An origin given less than it asked for, or slots later than now,
--       is scored in P:throttled at its new tat (ms); members whose slots
--       ran out are trimmed on every call.
-- HORIZON, 200 ms: slots are granted at most this far ahead. Long enough
--       that one call per origin per worker every ~200 ms keeps a busy
--       origin at its rate with few calls (a worker asks again when the
--       reply says), short enough that slots granted to a worker that then
--       dies (never used) cost at most 200 ms of the origin's rate, and that
--       workers asking at about the same time share the next 200 ms rather
--       than one taking seconds of slots the others then wait behind.
-- Reply one array per triple, in order: {status, granted, delay, interval,
--       retry}: status 0, or 1 when the origin's record holds another type
--       or a malformed field (nothing granted or written for it; retry 1 s);
--       delay (us from now to the first slot), interval (us, the one used),
--       retry (us from now until the slots granted reach less than half the
--       horizon ahead: asking again then brings about 100 ms of slots, not
--       one per call; 0 when all were granted).
--       Not idempotent: a call repeated after a lost reply takes new slots
--       (the lost ones go unused: a short dip below the rate, never above).
-- Refuses (error reply, nothing changed): KEY 1 of the wrong type, an
--       argument malformed or out of range.
--!include lib.lua

local HORIZON, FORGET = 200000, 300000000
local TRIPLES_MAX, COUNT_MAX, INTERVAL_MAX = 200, 10000, 60000000
local throttled, prefix = KEYS[1], ARGV[1]

local e = check_types({throttled, 'zset'})
if e then return e end
if not prefix or #prefix < 1 or #prefix > 1024 then
  return refuse('THROTTLE: bad prefix')
end
local n = (#ARGV - 1) / 3
if n < 1 or n ~= math.floor(n) or n > TRIPLES_MAX then
  return refuse('THROTTLE: expected 1 to %d origin, interval, count triples', TRIPLES_MAX)
end
local want = {}
for i = 2, #ARGV, 3 do
  local o, iv, k = ARGV[i], int_arg(ARGV[i + 1], 1, INTERVAL_MAX), int_arg(ARGV[i + 2], 1, COUNT_MAX)
  if #o < 1 or #o > 299 or not iv or not k then
    return refuse('THROTTLE: bad origin, interval or count at argument %d', i)
  end
  want[#want + 1] = {origin = o, iv = iv, k = k}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- An origin's record, read before any write: {tat, iv, untl}, or false
-- when its key holds another type or a field is not a whole number.
local function read_record(key)
  local h = redis.pcall('HMGET', key, 'tat', 'interval', 'until')
  if type(h) == 'table' and h.err then return false end
  local r = {tat = 0, iv = 0, untl = 0}
  if h[1] then r.tat = int_arg(h[1], 0, 9e15) end
  if h[2] then r.iv = int_arg(h[2], 1, INTERVAL_MAX) end
  if h[3] then r.untl = int_arg(h[3], 0, 9e15) end
  if not r.tat or not r.iv or not r.untl then return false end
  return r
end

local recs = {}
for _, w in ipairs(want) do
  if recs[w.origin] == nil then recs[w.origin] = read_record(prefix .. ':' .. w.origin) end
end

-- Checked; from here on, writes. One origin asked for twice in a call is
-- served from the record as the first triple left it.
local out, limit = {}, now + HORIZON
for j, w in ipairs(want) do
  local r = recs[w.origin]
  if not r then
    out[j] = {1, 0, 0, w.iv, 1000000}
  else
    if w.iv >= r.iv or now >= r.untl then r.iv, r.untl = w.iv, now + FORGET end
    local start, g = math.max(r.tat, now), 0
    if start < limit then g = math.min(w.k, math.floor((limit - 1 - start) / r.iv) + 1) end
    r.tat = start + g * r.iv
    local retry = 0
    if g < w.k then retry = math.max(0, r.tat - now - HORIZON / 2) end
    local key = prefix .. ':' .. w.origin
    redis.call('HSET', key, 'tat', string.format('%d', r.tat), 'interval',
               string.format('%d', r.iv), 'until', string.format('%d', r.untl))
    redis.call('PEXPIREAT', key, math.floor(math.max(r.tat + FORGET, r.untl) / 1000) + 1)
    if g < w.k or start > now then
      redis.call('ZADD', throttled, math.floor(r.tat / 1000), w.origin)
    end
    out[j] = {0, g, start - now, r.iv, retry}
  end
end
redis.call('ZREMRANGEBYSCORE', throttled, '-inf', '(' .. math.floor(now / 1000))
return out
