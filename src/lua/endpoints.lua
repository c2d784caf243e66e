#!lua flags=no-writes
-- ENDPOINTS: the origins whose breaker is not closed, for a worker's
-- mirror, read at one instant.
--
-- KEYS  1 endpoints  hash    P:endpoints
--       2 gen        string  P:endpoints:gen
-- Reply {gen, {origin, line, ...}}: the generation (0 when absent) and
--       every entry of P:endpoints ("<state> <since> <due>").
-- Refuses (error reply; it writes nothing): a KEY of the wrong type, gen
--       not a whole number.
--!include lib.lua

local endpoints, gen = KEYS[1], KEYS[2]
local e = check_types({endpoints, 'hash', gen, 'string'})
if e then return e end
local g = redis.call('GET', gen)
if g and not (#g <= 16 and string.match(g, '^%d+$')) then
  return refuse('key %s holds %q, not a whole number; fix or delete it', gen, string.sub(g, 1, 40))
end
return {tonumber(g or '0'), redis.call('HGETALL', endpoints)}
