-- Deletes a lock only while it still holds the given value (its owner: a run id, or the
-- chunk holding a replace turn).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
