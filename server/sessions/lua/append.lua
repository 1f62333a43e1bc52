-- Append one frame to a session and trim it to both bounds, in one atomic step; fenced by generation.
-- KEYS[1] session hash; ARGV: generation, entry JSON, image bytes, max frames, max bytes, lowest seq to use, and
-- '1' to use exactly that seq (a frame kept in a worker's memory while Redis failed, moving in with its seq).
-- Returns {seq, {evicted seqs}}, or the error GONE (no such session) or FENCED (a newer connection owns it).
local key = KEYS[1]
local generation = redis.call('HGET', key, 'gen')
if not generation then return redis.error_reply('GONE session not in Redis') end
if generation ~= ARGV[1] then return redis.error_reply('FENCED session taken over') end
local next_seq = tonumber(redis.call('HGET', key, 'next'))
local first = tonumber(redis.call('HGET', key, 'first'))
local seq = math.max(next_seq, tonumber(ARGV[6]))
if ARGV[7] == '1' then
  seq = tonumber(ARGV[6])
  first = math.min(first, seq)
  -- Already here when the call that timed out ran after all: the worker's copy replaces it.
  if redis.call('HEXISTS', key, 'm' .. seq) == 1 then
    redis.call('HINCRBY', key, 'count', -1)
    redis.call('HINCRBY', key, 'bytes', -redis.call('HSTRLEN', key, 'i' .. seq))
  end
end
redis.call('HSET', key, 'm' .. seq, ARGV[2], 'i' .. seq, ARGV[3], 'next', math.max(next_seq, seq + 1))
local count = redis.call('HINCRBY', key, 'count', 1)
local bytes = redis.call('HINCRBY', key, 'bytes', #ARGV[3])
local max_frames, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local evicted = {}
-- Oldest first, as server/history.py does; seqs skipped by a higher ARGV[6] hold nothing and are stepped over.
while count > 0 and (count > max_frames or bytes > max_bytes) and first <= seq do
  local size = redis.call('HSTRLEN', key, 'i' .. first)
  if redis.call('HDEL', key, 'm' .. first, 'i' .. first) > 0 then
    count = count - 1
    bytes = bytes - size
    evicted[#evicted + 1] = first
  end
  first = first + 1
end
redis.call('HSET', key, 'first', first, 'count', count, 'bytes', bytes)
if #evicted > 0 then redis.call('HINCRBY', key, 'dropped', #evicted) end
return {seq, evicted}
