-- backlog.lua: the bookkeeping behind hookd_backlog_age_seconds (P:backlog).
--
-- Producers' jobs carry no time, and hookd does not rewrite them, so the age
-- of the oldest ready job is found from counts. P:queue fills at both ends:
-- producers (and DLQ replays and hookd's own events) LPUSH at the left, in
-- arrival order; hookd RPUSHes at the right the retries that came due and
-- the jobs it gives back, and FETCH takes from the right. So the list is a
-- FIFO of left arrivals with a stack of hookd's pushes on top of it, "the
-- front". P:backlog (hash) holds:
--   front        jobs of the front not taken yet
--   front_since  ms, Redis's clock: when the bottom of the front, its
--                oldest job, became due (a retry's due time; a job given
--                back: when it was given back)
--   left_taken   left arrivals taken, ever
-- The metrics process (BACKLOG, backlog.c) dates left arrivals by sampling
-- their running count, left_taken + (LLEN - front), once a second.
-- Anything else that changes P:queue (an operator's LREM or DEL) can skew
-- the front until the queue next runs empty, never a job.

local BACKLOG_FIELDS = {'front', 'front_since', 'left_taken'}

local function backlog_front(backlog)
  return tonumber(redis.call('HGET', backlog, 'front') or '0')
end

-- n jobs RPUSHed onto the queue, the oldest of them due at due_ms.
local function backlog_pushed(backlog, n, due_ms)
  if n <= 0 then return end
  if backlog_front(backlog) <= 0 then
    redis.call('HSET', backlog, 'front', string.format('%.0f', n),
               'front_since', string.format('%.0f', due_ms))
  else
    redis.call('HINCRBY', backlog, 'front', n)
  end
end

-- n jobs taken from the right end of the queue: the front's first.
local function backlog_taken(backlog, queue, n)
  if n <= 0 then return end
  local front = backlog_front(backlog)
  local from_front = math.max(0, math.min(front, n))
  if redis.call('LLEN', queue) == 0 then front = 0
  else front = math.max(0, front - from_front) end
  redis.call('HSET', backlog, 'front', string.format('%.0f', front))
  if n > from_front then redis.call('HINCRBY', backlog, 'left_taken', n - from_front) end
end
