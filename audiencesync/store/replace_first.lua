-- 1: this chunk sends batch 1 (taken or kept); 0: another chunk does, wait; 2: the session is
-- open, take a seq. A slot taken over from a dead holder takes its seq 1 away from it.
if redis.call('HEXISTS', KEYS[4], 'replace_opened_at') == 1 then return 2 end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local previous = redis.call('HGET', KEYS[3], 'first')
if previous then redis.call('HDEL', KEYS[3], previous) end
redis.call('HSET', KEYS[3], ARGV[1], 1, 'first', ARGV[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') < 1 then redis.call('SET', KEYS[2], 1) end
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
