"""Where a throttled run's time goes: the gate's state and every call's send time, sampled.

A thread polls the account's gate keys (gate.py) every POLL_S on Redis's clock: the hash gives
Meta's latest usage figure and the load limit, the leases sorted set gives each call's send time
(a lease's score is its send time plus the lease's time to live). `bench.throttle --trace`
prints the timeline per second of the run: calls sent, usage and load limit at the second's
end, whether a caller found every in-flight slot taken ("slots") in the adapt interval open
then, and the deferrals (the workers' task-retried events: a chunk the gate told to
come back later; bench.run injects no errors, so every retry there is one).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import redis
from celery import Celery

from audiencesync.settings import Settings
from audiencesync.throttle.gate import LEASE_MARGIN_S, Gate, account_key

POLL_S = 0.01


class Trace:
    def __init__(self, redis_url: str, account: str, lease_ttl_s: float) -> None:
        self.r = redis.Redis.from_url(redis_url)
        self.state_key, _, self.leases_key = Gate.keys(account)
        self.lease_ttl_s = lease_ttl_s
        self.sends: dict[bytes, float] = {}
        self.states: list[tuple[float, float, int, bytes]] = []  # (time, usage, limit, blocked)
        self.retries: list[float] = []  # when each task-retried event was sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._events = Celery(broker=redis_url)
        self._receiver: Any = None  # a Celery events receiver, once listening
        self._listener = threading.Thread(target=self._listen, daemon=True)

    def _now(self) -> float:
        seconds, micros = self.r.time()
        return seconds + micros / 1e6

    def __enter__(self) -> Trace:
        self.started_s = self._now()
        self._thread.start()
        self._listener.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._listener.join(timeout=5)

    def _listen(self) -> None:
        retried = {"task-retried": lambda event: self.retries.append(event["timestamp"])}
        with self._events.connection_for_read() as conn:
            self._receiver = self._events.events.Receiver(conn, handlers=retried)
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            now_s = self._now()
            for lease, score in self.r.zrange(self.leases_key, 0, -1, withscores=True):
                self.sends.setdefault(lease, score - self.lease_ttl_s)
            usage, limit, by_slots = self.r.hmget(
                self.state_key, "usage_last", "limit", "slots_blocked"
            )
            if usage is not None:
                blocked = b"slots" * (by_slots == b"1")
                self.states.append((now_s, float(usage), int(float(limit)), blocked))

    def timeline(self) -> list[dict]:
        """Per second since the upload started: calls sent, deferrals, what blocked a caller
        during it, then Meta's usage figure and the load limit at its end."""
        per_second = Counter(int(t - self.started_s) for t in self.sends.values())
        deferred = Counter(int(t - self.started_s) for t in self.retries)
        rows, state_i, usage, limit = [], 0, 0.0, 0
        for second in range(max(per_second, default=-1) + 1):
            blocked: set[str] = set()
            while state_i < len(self.states) and self.states[state_i][0] < (
                self.started_s + second + 1
            ):
                _, usage, limit, flags = self.states[state_i]
                blocked.update(flags.decode().split())
                state_i += 1
            rows.append({"s": second, "calls": per_second[second], "usage": round(usage, 2),
                         "limit": limit, "deferrals": deferred[second],
                         "blocked": " ".join(sorted(blocked))})  # fmt: skip
        return rows

    def first_send_s(self) -> float:
        return min(self.sends.values(), default=self.started_s) - self.started_s


def trace_stack(redis_url: str, env: dict[str, str]) -> Trace:
    """A trace of the ad account a stack's uploads use, read with its workers' settings."""
    prefix = "AUDIENCESYNC_"
    given: dict[str, Any] = {
        k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)
    }
    settings = Settings(**given)
    lease_ttl_s = settings.http_timeout_s + settings.throttle_max_wait_s + LEASE_MARGIN_S
    return Trace(redis_url, account_key(settings.ad_account_id, ""), lease_ttl_s)
