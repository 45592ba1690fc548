-- Stages chunk n only if this producer is the run's current attempt and n is the next chunk: a
-- producer superseded by `resume` stops instead of counting rows twice.
local meta = KEYS[1]
if redis.call('HGET', meta, 'attempt') ~= ARGV[4]
   or tonumber(redis.call('HGET', meta, 'chunks_staged')) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[6])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[6])
redis.call('HINCRBY', meta, 'chunks_staged', 1)
redis.call('HINCRBY', meta, 'ids_read', ARGV[3])
redis.call('HSET', meta, 'progress_at', ARGV[5])
return 1
