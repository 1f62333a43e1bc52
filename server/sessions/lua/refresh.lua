-- Keep the sessions this worker owns alive: a worker killed with SIGKILL stops refreshing, and they expire.
-- KEYS: session hashes; ARGV: owner, TTL (ms). Returns how many were still owned by it.
local owned = 0
for _, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'owner') == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    owned = owned + 1
  end
end
return owned
