-- Records a chunk's final outcome once (the first wins), frees it, and counts it once, however
-- often its task is delivered; returns the recorded outcome.
local meta, ledger, chunk = KEYS[1], KEYS[6], ARGV[1]
if redis.call('HSETNX', ledger, chunk, ARGV[2]) == 1 then
  redis.call('EXPIRE', ledger, ARGV[7])
  redis.call('HINCRBY', meta, 'chunks_done', 1)
  redis.call('HINCRBY', meta, 'ids_done', ARGV[3])
  redis.call('HINCRBY', meta, 'ids_uploaded', ARGV[4])
  redis.call('HINCRBY', meta, 'chunks_failed', ARGV[5])
  redis.call('HSET', meta, 'progress_at', ARGV[6])
  if redis.call('HGET', meta, 'status') == 'stalled' then
    redis.call('HSET', meta, 'status', 'running')
  end
end
redis.call('HDEL', KEYS[2], chunk)
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('LPUSH', KEYS[5], 1)
redis.call('LTRIM', KEYS[5], 0, 0)
redis.call('EXPIRE', KEYS[5], ARGV[7])
return redis.call('HGET', ledger, chunk)
