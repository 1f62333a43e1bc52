-- Make a reserved generation the one allowed to write (unless a newer one already is): the old owner is fenced.
-- KEYS[1] session hash; ARGV: generation, owner, TTL (ms) while owned. Returns {started, next seq}, or nil.
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return false end
if tonumber(ARGV[1]) > tonumber(redis.call('HGET', key, 'gen')) then
  redis.call('HSET', key, 'gen', ARGV[1], 'owner', ARGV[2])
end
redis.call('PEXPIRE', key, ARGV[3])
return redis.call('HMGET', key, 'started', 'next')
