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
--!include endpoint.lua

local endpoints, gen = KEYS[1], KEYS[2]
local e = check_types({endpoints, 'hash', gen, 'string'}) or ep_check_gen(gen)
if e then return e end
return {tonumber(redis.call('GET', gen) or '0'), redis.call('HGETALL', endpoints)}
