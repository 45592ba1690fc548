"""Client, latches and locks beside the run store: a Redis client that rides out restarts, a
latch to block on instead of polling, and one run at a time per declared audience
(`as:lock:audience:{name}`, runs.py has the whole key layout)."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry

POOL_WAIT_S = 30  # a thread finding every pooled connection busy waits this long for one


def connect(url: str, *, max_connections: int | None = None, **kwargs) -> redis.Redis:
    """A client that rides out a Redis restart or failover: each command is retried for ~30 s.
    With `max_connections` (a worker's threads share it), a thread finding them all busy waits
    for one, where redis-py's default pool refuses it at once ("Too many connections")."""
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=20)
    if max_connections is None:
        return redis.Redis.from_url(url, retry=retry, **kwargs)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_WAIT_S, retry=retry, **kwargs
    )
    return redis.Redis(connection_pool=pool)


def open_latch(r: redis.Redis, key: str, ttl_s: int) -> None:
    """Open the latch at `key`: every waiter (`wait_latch`) wakes, and later ones do not wait."""
    r.pipeline(transaction=False).rpush(key, 1).expire(key, ttl_s).execute()


def wait_latch(r: redis.Redis, key: str, timeout_s: float, ttl_s: int) -> bool:
    """Block (no polling) until the latch at `key` is open, at most timeout_s; True if it is.
    The token is pushed back at once, so every waiter wakes."""
    # below the client's socket timeout (redis-py's default is 5 s), which would cut it off
    socket_s = r.connection_pool.connection_kwargs.get("socket_timeout") or timeout_s + 1
    if r.blpop([key], timeout=max(min(timeout_s, socket_s - 1), 0.01)) is None:
        return False
    open_latch(r, key, ttl_s)
    return True


class AudienceLocks:
    """One run at a time per declared audience (and per mirrored audience): SET NX with a TTL
    its producer refreshes; only its holder releases it (the scripts are RunStore's)."""

    r: redis.Redis
    _refresh: Script
    _release: Script

    @staticmethod
    def lock_key(audience_name: str) -> str:
        return f"as:lock:audience:{audience_name}"

    def take_audience_lock(self, audience_name: str, run_id: str, ttl_s: int) -> str | None:
        """None if taken now; otherwise the run id that holds it."""
        key = self.lock_key(audience_name)
        if self.r.set(key, run_id, nx=True, ex=ttl_s):
            return None
        holder = self.r.get(key)
        return holder.decode() if holder else "(just released)"

    def refresh_audience_lock(self, audience_name: str, run_id: str, ttl_s: int) -> bool:
        return bool(self._refresh(keys=[self.lock_key(audience_name)], args=[run_id, ttl_s]))

    def release_audience_lock(self, audience_name: str, run_id: str) -> bool:
        return bool(self._release(keys=[self.lock_key(audience_name)], args=[run_id]))
