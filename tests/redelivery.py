"""How kombu's Redis transport redelivers, seen from outside: a message delivered to a worker
and not acknowledged sits in the `unacked` hash (delivery tag -> message) and the
`unacked_index` sorted set (delivery tag -> delivery time) until it is acknowledged, or until a
worker's periodic sweep finds it older than the visibility timeout and puts it back in its
queue."""

from __future__ import annotations

import json
import time

import redis

from workers.app import restore_interval_s


def unacked(r: redis.Redis, task: str | None = None) -> dict[str, float]:
    """Messages (of `task`) delivered and not acknowledged: delivery tag -> delivery time."""
    held = {}
    for tag, raw in r.hgetall("unacked").items():
        payload = json.loads(raw)[0]
        if task is None or payload["headers"]["task"] == task:
            held[tag.decode()] = r.zscore("unacked_index", tag)
    return held


def wait_redelivered(r: redis.Redis, held: dict[str, float], visibility_timeout_s: int) -> float:
    """Wait until the `held` messages are back in their queue; returns when they were.

    A sweep restores them once older than the visibility timeout: not before the oldest
    delivery + the timeout, and before the newest + the timeout + a sweep interval (+ slack for
    a loaded machine)."""
    interval_s = restore_interval_s(visibility_timeout_s)
    deadline = max(held.values()) + visibility_timeout_s + 2 * interval_s + 10
    while any(r.hexists("unacked", tag) for tag in held):
        if time.time() > deadline:
            raise AssertionError(f"messages not redelivered by the deadline: {held}")
        time.sleep(0.1)
    return time.time()
