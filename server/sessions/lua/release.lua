-- The owner's socket is gone: fence every handle (no late write lands), then keep the session for the grace.
-- KEYS[1] session hash; ARGV: generation, grace (ms; 0 deletes at once). Returns 1, or 0 when not the owner.
local key = KEYS[1]
if redis.call('HGET', key, 'gen') ~= ARGV[1] then return 0 end
redis.call('HSET', key, 'gen', redis.call('HINCRBY', key, 'issued', 1))
redis.call('HDEL', key, 'owner')
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', key, ARGV[2]) else redis.call('DEL', key) end
return 1
