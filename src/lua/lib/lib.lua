-- lib.lua: helpers pasted into every script by the build (a line
-- "--!include lib.lua"). Nothing here writes to Redis.
--
-- The rule every script follows: check every key's type and every
-- argument, and compute what it can, before its first write. Redis runs a
-- script atomically but does not roll one back, so an error raised after a
-- write would leave a move half done; a refusal before it leaves Redis
-- unchanged. Refusals are returned (never raised) so their text reaches the
-- caller as written.

-- An error reply starting "hookd: ".
local function refuse(fmt, ...)
  return redis.error_reply('hookd: ' .. string.format(fmt, ...))
end

-- nil when key holds a value of type want, or nothing; else what is wrong.
local function wrong_type(key, want)
  local t = redis.call('TYPE', key).ok
  if t == want or t == 'none' then return nil end
  return 'key ' .. key .. ' holds a ' .. t .. ', not a ' .. want .. '; rename or delete it'
end

-- Check key, type, key, type, ...: a refusal for the first wrong one.
local function check_types(list)
  for i = 1, #list, 2 do
    local w = wrong_type(list[i], list[i + 1])
    if w then return refuse('%s', w) end
  end
end

-- A refusal unless every named field of the counters hash is absent or a
-- whole number HINCRBY takes: written as Redis writes integers (no leading
-- zero, no "-0") and at most 18 digits, so adding a call's counts cannot
-- overflow 64 bits. HINCRBY on anything else would fail after the moves.
local function check_counters(stats, names)
  local v = redis.call('HMGET', stats, unpack(names))
  for i, name in ipairs(names) do
    local s = v[i]
    local digits = s and string.match(s, '^%-?([1-9]%d*)$')
    if s and s ~= '0' and not (digits and #digits <= 18) then
      return refuse('field %s of %s holds %q, not a whole number; fix or delete it',
                    name, stats, string.sub(s, 1, 40))
    end
  end
end

-- v as an integer in [lo, hi], or nil. At most 15 digits, so the double
-- Lua holds it in is exact.
local function int_arg(v, lo, hi)
  if type(v) ~= 'string' or #v > 16 or not string.match(v, '^%-?%d+$') then return nil end
  local n = tonumber(v)
  if n < lo or n > hi then return nil end
  return n
end

-- A seq: the decimal number a worker filed a job under in its in-flight hash.
local function is_seq(v)
  return type(v) == 'string' and #v >= 1 and #v <= 20 and string.match(v, '^%d+$') ~= nil
end

-- cmd key v1 v2 ... for any number of values. unpack() fails past about
-- 8,000 values (Lua's C stack, LUAI_MAXCSTACK), so long lists go in chunks.
local CHUNK = 1000
local function call_chunked(cmd, key, list)
  for i = 1, #list, CHUNK do
    redis.call(cmd, key, unpack(list, i, math.min(i + CHUNK - 1, #list)))
  end
end

-- Redis's clock in ms: every host's worker agrees on it.
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
