-- A session's entries from a seq on, without images. KEYS[1] session hash; ARGV[1] the first seq wanted.
-- Returns {dropped, bytes, seq, entry JSON, seq, entry JSON, ...}, or nil when Redis has no such session.
local key = KEYS[1]
local kept = redis.call('HMGET', key, 'first', 'next', 'dropped', 'bytes')
if not kept[1] then return false end
local out = {kept[3], kept[4]}
for seq = math.max(tonumber(kept[1]), tonumber(ARGV[1])), tonumber(kept[2]) - 1 do
  local entry = redis.call('HGET', key, 'm' .. seq)
  if entry then
    out[#out + 1] = seq
    out[#out + 1] = entry
  end
end
return out
