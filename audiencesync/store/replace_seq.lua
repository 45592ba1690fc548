-- The slot's batch_seq: the remembered one, or the next from the counter.
local seq = redis.call('HGET', KEYS[2], ARGV[1])
if seq then return tonumber(seq) end
seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], seq)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return seq
