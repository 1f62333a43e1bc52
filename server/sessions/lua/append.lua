-- Append one frame to a session and trim it to its bounds, in one atomic step; fenced by generation.
-- KEYS[1] session hash; ARGV: generation, entry JSON, image bytes, max live frames, max photos, max bytes, lowest
-- seq to use, and '1' to use exactly that seq (a frame kept in a worker's memory while Redis failed, moving in with
-- its seq). Returns {seq, {evicted seqs}}, or the error GONE (no such session) or FENCED (a newer connection owns it).
-- The same rules as server/history.py: a kind over its own count loses its oldest entry; over the byte total, the
-- oldest live frame goes, and the oldest photo only when no live frame is left.
local key = KEYS[1]
local generation = redis.call('HGET', key, 'gen')
if not generation then return redis.error_reply('GONE session not in Redis') end
if generation ~= ARGV[1] then return redis.error_reply('FENCED session taken over') end
local function is_photo(meta) return cjson.decode(meta)['kind'] == 'photo' end
local next_seq = tonumber(redis.call('HGET', key, 'next'))
local first = tonumber(redis.call('HGET', key, 'first'))
local count = tonumber(redis.call('HGET', key, 'count'))
local bytes = tonumber(redis.call('HGET', key, 'bytes'))
local photos = tonumber(redis.call('HGET', key, 'photos') or 0)
local seq = math.max(next_seq, tonumber(ARGV[7]))
if ARGV[8] == '1' then
  seq = tonumber(ARGV[7])
  first = math.min(first, seq)
  -- Already here when the call that timed out ran after all: the worker's copy replaces it.
  local old = redis.call('HGET', key, 'm' .. seq)
  if old then
    count = count - 1
    bytes = bytes - redis.call('HSTRLEN', key, 'i' .. seq)
    if is_photo(old) then photos = photos - 1 end
  end
end
redis.call('HSET', key, 'm' .. seq, ARGV[2], 'i' .. seq, ARGV[3], 'next', math.max(next_seq, seq + 1))
count = count + 1
bytes = bytes + #ARGV[3]
if is_photo(ARGV[2]) then photos = photos + 1 end
local max_frames, max_photos, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
-- The oldest entry of one kind (photos or live frames); seqs that hold nothing are stepped over.
local function oldest(photo)
  for s = first, seq do
    local meta = redis.call('HGET', key, 'm' .. s)
    if meta and is_photo(meta) == photo then return s end
  end
end
local evicted = {}
while true do
  local frames = count - photos
  local photo
  if frames > max_frames or (bytes > max_bytes and frames > 0) then
    photo = false
  elseif photos > max_photos or bytes > max_bytes then
    photo = true
  else
    break
  end
  local victim = oldest(photo)
  if photo then photos = photos - 1 end
  bytes = bytes - redis.call('HSTRLEN', key, 'i' .. victim)
  redis.call('HDEL', key, 'm' .. victim, 'i' .. victim)
  count = count - 1
  evicted[#evicted + 1] = victim
end
while first <= seq and redis.call('HEXISTS', key, 'm' .. first) == 0 do first = first + 1 end
redis.call('HSET', key, 'first', first, 'count', count, 'bytes', bytes, 'photos', photos)
if #evicted > 0 then redis.call('HINCRBY', key, 'dropped', #evicted) end
return {seq, evicted}
