"""A lease per chunk: who works on it, and until when someone vouches for it.

    as:leases               sorted set "{run_id}/{chunk}" -> deadline (epoch s): the reapers scan it
    as:run:{id}:holder      hash chunk -> the executing holder's token ("" while queued)

A chunk's lease is given when it is staged (queued: no holder), taken by the task that starts
on it (prepare, then upload), renewed every third of the lease while that task runs (by a
heartbeat thread in the worker process), handed back as queued with a deadline past its countdown
when the task retries or defers, and dropped when its outcome is in the ledger. A lease past its
deadline means nobody vouches for the chunk: its holder died, or its message was lost. The
reapers (reaper.py) act on it. Pure Lua: a take, a hand-back or a renewal is one atomic step.

A run's report has a lease too, as chunk FINALIZE: given when the producer has staged every
chunk, taken by finalize while it runs, dropped once the report is saved.
"""

from __future__ import annotations

import redis

LEASES = "as:leases"
FINALIZE = -1  # the "chunk" of a run's finalize: its report, and the close of its sessions

# KEYS: leases, holders. ARGV: member, chunk, token, deadline, now, ttl.
# Taken when free: no holder, this holder, or a holder whose deadline passed (it died).
TAKE = """
local holder = redis.call('HGET', KEYS[2], ARGV[2])
local deadline = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if holder and holder ~= '' and holder ~= ARGV[3] and deadline > tonumber(ARGV[5]) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1
"""

# Hands the lease back as queued until ARGV[4] (a retry's countdown, a re-driven message), if
# this token holds it (or ARGV[3] is '' and nobody executes it).
QUEUE = """
local holder = redis.call('HGET', KEYS[2], ARGV[2]) or ''
local deadline = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if holder ~= ARGV[3] and holder ~= '' and deadline > tonumber(ARGV[5]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], '')
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1
"""

# Extends the lease while this token still holds it.
RENEW = """
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[4], ARGV[1])
return 1
"""


def member(run_id: str, chunk: int) -> str:
    return f"{run_id}/{chunk}"


def parse_member(value: str) -> tuple[str, int]:
    run_id, _, chunk = value.rpartition("/")
    return run_id, int(chunk)


def holders_key(run_id: str) -> str:
    return f"as:run:{run_id}:holder"


class Leases:
    def __init__(self, client: redis.Redis, *, ttl_s: int):
        self.r = client
        self.ttl_s = ttl_s  # the holders hash lives as long as the run's state
        self._take = client.register_script(TAKE)
        self._queue = client.register_script(QUEUE)
        self._renew = client.register_script(RENEW)

    def _call(self, script, run_id: str, chunk: int, token: str, deadline: float, now: float):
        keys = [LEASES, holders_key(run_id)]
        args = [member(run_id, chunk), chunk, token, deadline, now, self.ttl_s]
        return bool(script(keys=keys, args=args))

    def take(self, run_id: str, chunk: int, token: str, *, deadline: float, now: float) -> bool:
        """False while another live holder executes this chunk (a duplicate delivery)."""
        return self._call(self._take, run_id, chunk, token, deadline, now)

    def queue(
        self, run_id: str, chunk: int, *, deadline: float, now: float, token: str = ""
    ) -> bool:
        """Queued until `deadline`: released by `token`, or given while nobody executes it."""
        return self._call(self._queue, run_id, chunk, token, deadline, now)

    def renew(self, run_id: str, chunk: int, token: str, *, deadline: float) -> bool:
        return self._call(self._renew, run_id, chunk, token, deadline, 0)

    def drop(self, run_id: str, chunk: int) -> None:
        pipe = self.r.pipeline()
        pipe.zrem(LEASES, member(run_id, chunk))
        pipe.hdel(holders_key(run_id), chunk)
        pipe.execute()

    def expired(self, now: float, limit: int = 100) -> list[tuple[str, int]]:
        values = self.r.zrangebyscore(LEASES, "-inf", now, start=0, num=limit)
        return [parse_member(v.decode()) for v in values]

    def deadline(self, run_id: str, chunk: int) -> float | None:
        return self.r.zscore(LEASES, member(run_id, chunk))

    def claim(self, what: str, ttl_s: float) -> bool:
        """One reaper acts on `what` (an expired lease, a run) per ttl_s: the first to ask."""
        return bool(self.r.set(f"as:reap:{what}", 1, nx=True, px=max(1, int(ttl_s * 1000))))
