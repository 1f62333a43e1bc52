-- Reserve the next generation of a session about to be taken over; says which worker owns it now.
-- KEYS[1] session hash. Returns {generation, owner or ''}, or nil when Redis has no such session.
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return false end
return {redis.call('HINCRBY', key, 'issued', 1), redis.call('HGET', key, 'owner') or ''}
