-- Keep the sessions this worker owns alive (a worker killed with SIGKILL stops refreshing, and they expire), and
-- say which generation each one is at, so that a connection whose session a newer one took is closed.
-- KEYS: session hashes; ARGV: owner, TTL (ms). Returns each session's generation, or nil where it is not in Redis.
local generations = {}
for i, key in ipairs(KEYS) do
  local kept = redis.call('HMGET', key, 'owner', 'gen')
  if kept[1] == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]) end
  generations[i] = kept[2]
end
return generations
