"""The run store's atomic steps: Lua scripts that Redis runs as one (see runstore.py)."""

# Deletes or extends a lock only while it still holds the given value (the owner's run id).
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
REFRESH_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# Stages chunk n only if this producer is the run's current attempt and n is the next chunk: a
# producer superseded by `resume` stops instead of counting rows twice.
STAGE_CHUNK = """
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
"""

# Records a chunk's final outcome once (the first wins), frees it, and counts it once, however
# often its task is delivered; returns the recorded outcome.
FINISH_CHUNK = """
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
"""

# The watchdog's compare-and-set: only a run still `running` with no progress since ARGV[1].
MARK_STALLED = """
if redis.call('HGET', KEYS[1], 'status') == 'running'
   and tonumber(redis.call('HGET', KEYS[1], 'progress_at') or '0') < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'status', 'stalled')
  return 1
end
return 0
"""
