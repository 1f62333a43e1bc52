-- Create a session that Redis does not hold (a new one, or one Redis lost), or confirm that we still own it.
-- KEYS[1] session hash; ARGV: generation, owner, start (epoch s), first seq, TTL (ms) while owned.
-- Returns 1 when the session is ours, 0 when a newer connection owns it.
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'issued', ARGV[1], 'gen', ARGV[1], 'owner', ARGV[2], 'started', ARGV[3],
             'first', ARGV[4], 'next', ARGV[4], 'count', 0, 'photos', 0, 'bytes', 0, 'dropped', 0)
elseif redis.call('HGET', key, 'gen') ~= ARGV[1] then
  return 0
else
  redis.call('HSET', key, 'owner', ARGV[2])
end
redis.call('PEXPIRE', key, ARGV[5])
return 1
