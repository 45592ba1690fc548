"""Where a chunk's task message is, in kombu's Redis transport, and how to hand one back.

    {queue}          list of messages waiting for a worker (published with LPUSH, taken BRPOP)
    unacked          hash delivery tag -> [message, exchange, routing key]: delivered to a
                     worker, not acknowledged yet (a retry's countdown is held here too)
    unacked_index    sorted set delivery tag -> when delivered (the visibility timeout's clock)

kombu puts an unacknowledged message back only after the visibility timeout; a reaper that knows
the chunk's holder is gone (its lease ran out) hands it back at once, exactly as kombu would:
removed from `unacked` and pushed where the next worker takes it first, in one atomic step (a
second reaper, or kombu's own sweep, finds nothing left to restore). Only the tasks that hold a
lease are read (a chunk's, or its run's finalize: leases.FINALIZE): their arguments hold a run
id, a chunk number or the chunks' results, never an ID.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson
import redis

from audiencesync.recovery.leases import FINALIZE

# Where run_id is in the task's args: the chunk follows it (finalize: the run's lease, FINALIZE).
RUN_ARG = {"audiencesync.prepare": 0, "audiencesync.upload": 1, "audiencesync.finalize": 1}

# KEYS: unacked, unacked_index, queue. ARGV: tag, payload.
RESTORE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('RPUSH', KEYS[3], ARGV[2])
  return 1
end
return 0
"""


def chunk_of(message: dict) -> tuple[str, int] | None:
    """The (run id, chunk) a prepare or upload message works on, (run id, FINALIZE) for a
    finalize; None for any other message."""
    task = message.get("headers", {}).get("task", "")
    if (index := RUN_ARG.get(task)) is None:
        return None
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args = orjson.loads(body)[0]
    if task == "audiencesync.finalize":
        return str(args[index]), FINALIZE
    return str(args[index]), int(args[index + 1])


@dataclass
class Delivered:
    tag: str
    message: dict
    routing_key: str


class Messages:
    """One look at the broker's lists, read lazily: only a reaper round with a lapsed lease
    pays for it (the lists are bounded by the staging windows of the runs in progress)."""

    def __init__(self, r: redis.Redis, queues: tuple[str, ...]):
        self.r, self.queues = r, queues
        self._waiting: set[tuple[str, int]] | None = None
        self._delivered: dict[tuple[str, int], list[Delivered]] | None = None
        self._restore = r.register_script(RESTORE)

    def waiting(self, key: tuple[str, int]) -> bool:
        if self._waiting is None:
            self._waiting = set()
            for queue in self.queues:
                for raw in self.r.lrange(queue, 0, -1):
                    if (found := chunk_of(orjson.loads(raw))) is not None:
                        self._waiting.add(found)
        return key in self._waiting

    def delivered(self, key: tuple[str, int]) -> list[Delivered]:
        if self._delivered is None:
            self._delivered = {}
            for tag, raw in self.r.hgetall("unacked").items():
                message, _, routing_key = orjson.loads(raw)
                if (found := chunk_of(message)) is not None:
                    entry = Delivered(tag.decode(), message, routing_key)
                    self._delivered.setdefault(found, []).append(entry)
        return self._delivered.get(key, [])

    def restore(self, entry: Delivered) -> bool:
        """Back to its queue, first in line; False if someone else restored or acked it."""
        message = entry.message
        if message.get("properties", {}).get("priority"):
            return False  # never published here: left to kombu's own sweep
        message.setdefault("headers", {})["redelivered"] = True
        keys = ["unacked", "unacked_index", entry.routing_key]
        return bool(self._restore(keys=keys, args=[entry.tag, orjson.dumps(message)]))
