-- The watchdog's compare-and-set: only a run still `running` with no progress since ARGV[1].
if redis.call('HGET', KEYS[1], 'status') == 'running'
   and tonumber(redis.call('HGET', KEYS[1], 'progress_at') or '0') < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'status', 'stalled')
  return 1
end
return 0
