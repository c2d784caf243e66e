-- marks.lua: the prefixes hookd puts in front of a job it puts back on a
-- queue (JOB_ACCEPTED_MARK, JOB_CRASHED_MARK in job.h). 0xc1 (decimal 193;
-- Lua 5.1 has decimal escapes only) starts neither JSON nor msgpack, so a
-- producer's job never carries one by accident.
--   \193accepted:      it may have been accepted for dedupe_window already:
--                      not a duplicate of itself
--   \193crashed:N:     it was in flight in N workers that died
-- In that order, each at most once.
local ACCEPTED, CRASHED = '\193accepted:', '\193crashed:'

-- The job bytes without marks, whether it was accepted, its crash count.
local function unmark(j)
  local accepted, crashes = false, 0
  if string.sub(j, 1, #ACCEPTED) == ACCEPTED then
    accepted = true
    j = string.sub(j, #ACCEPTED + 1)
  end
  if string.sub(j, 1, #CRASHED) == CRASHED then
    -- Digits only (job.c reads the same): "inf" or "nan" is no count.
    local digits = string.match(string.sub(j, #CRASHED + 1, #CRASHED + 8), '^(%d+):')
    if digits then
      crashes = tonumber(digits)
      j = string.sub(j, #CRASHED + #digits + 2)
    end
  end
  return j, accepted, crashes
end

local function mark(j, accepted, crashes)
  local out = j
  if crashes > 0 then out = CRASHED .. crashes .. ':' .. out end
  if accepted then out = ACCEPTED .. out end
  return out
end
