-- dead.lua: the dead-letter list's cap. Needs lib.lua.
--
-- Entries past dead_max are dropped from the oldest end, with whatever was
-- kept aside for them (P:dead:secrets, by dead_id), and counted in
-- dead_trimmed (callers check that counter with the others). At most
-- TRIM_STEP a call: a dead_max lowered by a lot, or a RECLAIM that
-- dead-lettered a whole worker's jobs, is reached over the next calls
-- rather than in one long script; a RECORD adds at most 500 entries, so
-- the list converges.
local TRIM_STEP = 2000

local function trim_dead(dead, aside, stats, max)
  local over = redis.call('LLEN', dead) - max
  if over <= 0 then return end
  if over > TRIM_STEP then over = TRIM_STEP end
  local gone = redis.call('RPOP', dead, over)
  if redis.call('HLEN', aside) > 0 then
    -- Entries hookd writes start with {"dead_id":"..."; no JSON decoding of
    -- entries that may be megabytes long.
    for _, e in ipairs(gone) do
      local id = string.match(e, '^{"dead_id":"([^"\\]*)"')
      if id then redis.call('HDEL', aside, id) end
    end
  end
  redis.call('HINCRBY', stats, 'dead_trimmed', #gone)
end
