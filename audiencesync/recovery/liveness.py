"""Which queues have a live worker: each worker process writes a heartbeat per queue it consumes.

    as:workers:{queue}      sorted set worker hostname -> last heartbeat (epoch s)

Written by every worker's reaper thread each round; a worker is live while its last heartbeat is
younger than `dead_after_s`. One ZADD per queue a round, one ZRANGEBYSCORE a look: cheaper than
Celery's broadcast `inspect`, which waits for replies.
"""

from __future__ import annotations

import redis

RUN_QUEUES = ("standard", "critical")  # every run needs prepare (standard) and upload (critical)


def workers_key(queue: str) -> str:
    return f"as:workers:{queue}"


def beat(r: redis.Redis, hostname: str, queues: list[str], now: float, ttl_s: int) -> None:
    pipe = r.pipeline()
    for queue in queues:
        pipe.zadd(workers_key(queue), {hostname: now})
        pipe.zremrangebyscore(workers_key(queue), "-inf", now - ttl_s)  # long gone: forgotten
        pipe.expire(workers_key(queue), ttl_s)
    pipe.execute()


def gone(r: redis.Redis, hostname: str, queues: list[str]) -> None:
    """A worker shutting down cleanly stops counting at once."""
    pipe = r.pipeline()
    for queue in queues:
        pipe.zrem(workers_key(queue), hostname)
    pipe.execute()


def live_workers(r: redis.Redis, queue: str, now: float, dead_after_s: float) -> list[str]:
    return [v.decode() for v in r.zrangebyscore(workers_key(queue), now - dead_after_s, "+inf")]


def missing_queues(
    r: redis.Redis, now: float, dead_after_s: float, queues: tuple[str, ...] = RUN_QUEUES
) -> list[str]:
    return [q for q in queues if not live_workers(r, q, now, dead_after_s)]


def missing_message(queue: str) -> str:
    return (
        f"no worker is consuming `{queue}`: start one with `audiencesync worker --queues {queue}`"
    )
