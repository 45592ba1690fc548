"""Run state and staged chunks in Redis: the one module that knows the key layout.

    as:runs                     sorted set of run ids by start time
    as:run:{id}                 hash: what the run is, its progress counters, its outcome
    as:run:{id}:raw:{n}         chunk n as read from the source (claim check for `prepare`)
    as:run:{id}:prep:{n}        chunk n's payload, ready to send, compressed (for `upload`)
    as:run:{id}:inflight        chunk numbers staged and not yet finished (backpressure)
    as:run:{id}:wake            a nudge for a producer waiting for room in the staging window
    as:run:{id}:closer          one entry already sent, re-sent to close the upload session
    as:run:{id}:report          the final report (JSON)
Task messages carry only the run id and chunk number: never IDs, never secrets.
"""

from __future__ import annotations

import time
import zlib

import orjson
import redis

# Frees a finished chunk and counts it once, however often its task is delivered.
_FINISH_CHUNK = """
local removed = redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4])
if removed == 1 then
  redis.call('HINCRBY', KEYS[1], 'chunks_done', 1)
  redis.call('HINCRBY', KEYS[1], 'ids_done', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'ids_uploaded', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'chunks_failed', ARGV[4])
  redis.call('LPUSH', KEYS[5], 1)
  redis.call('LTRIM', KEYS[5], 0, 0)
end
return removed
"""


def encode_raw(values: list[str]) -> bytes:
    blob = "\n".join(values).encode("utf-8", "surrogateescape")
    if blob.count(b"\n") != len(values) - 1:
        raise ValueError("a staged value contains a newline; sources must remove them")
    return blob


def decode_raw(blob: bytes) -> list[str]:
    return blob.decode("utf-8", "surrogateescape").split("\n")


class RunStore:
    def __init__(self, client: redis.Redis, *, ttl_s: int = 30 * 24 * 3600):
        self.r = client
        self.ttl_s = ttl_s
        self._finish = client.register_script(_FINISH_CHUNK)

    @staticmethod
    def key(run_id: str, *parts: object) -> str:
        return ":".join(("as:run", run_id, *map(str, parts)))

    # --- run meta and progress -------------------------------------------------------------
    def create_run(self, run_id: str, meta: dict[str, str | int | float]) -> None:
        pipe = self.r.pipeline()
        pipe.hset(self.key(run_id), mapping={"status": "running", **meta})
        pipe.expire(self.key(run_id), self.ttl_s)
        pipe.zadd("as:runs", {run_id: time.time()})
        pipe.execute()

    def meta(self, run_id: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.r.hgetall(self.key(run_id)).items()}

    def update(self, run_id: str, **fields: str | int | float) -> None:
        self.r.hset(self.key(run_id), mapping=fields)

    def count(self, run_id: str, **amounts: float) -> None:
        """Add to the run's counters (throttle events, cool-down seconds), from any worker."""
        pipe = self.r.pipeline()
        for name, amount in amounts.items():
            pipe.hincrbyfloat(self.key(run_id), name, amount)
        pipe.execute()

    def abort(self, run_id: str, reason: str) -> None:
        """Stop the run: the producer stops reading, queued uploads fail without calling Meta."""
        self.r.hsetnx(self.key(run_id), "aborted", reason)

    def aborted(self, run_id: str) -> str | None:
        value = self.r.hget(self.key(run_id), "aborted")
        return value.decode() if value else None

    # --- staged chunks ------------------------------------------------------------------------
    def stage_raw(self, run_id: str, chunk: int, values: list[str]) -> None:
        pipe = self.r.pipeline()
        pipe.set(self.key(run_id, "raw", chunk), encode_raw(values), ex=self.ttl_s)
        pipe.sadd(self.key(run_id, "inflight"), chunk)
        pipe.hincrby(self.key(run_id), "chunks_staged", 1)
        pipe.hincrby(self.key(run_id), "ids_read", len(values))
        pipe.execute()

    def staged_count(self, run_id: str) -> int:
        return int(self.r.scard(self.key(run_id, "inflight")))

    def wait_for_room(self, run_id: str, window_chunks: int, *, poll_s: float = 1.0) -> None:
        """Block until fewer than window_chunks chunks are staged and unfinished."""
        while self.staged_count(run_id) >= window_chunks:
            self.r.blpop([self.key(run_id, "wake")], timeout=poll_s)

    def take_raw(self, run_id: str, chunk: int) -> list[str] | None:
        blob = self.r.get(self.key(run_id, "raw", chunk))
        return None if blob is None else decode_raw(blob)

    def put_prepared(self, run_id: str, chunk: int, payload_json: bytes, closer: str | None):
        pipe = self.r.pipeline()
        pipe.set(self.key(run_id, "prep", chunk), zlib.compress(payload_json, 1), ex=self.ttl_s)
        if closer is not None:
            pipe.set(self.key(run_id, "closer"), closer, nx=True, ex=self.ttl_s)
        pipe.delete(self.key(run_id, "raw", chunk))
        pipe.execute()

    def get_prepared(self, run_id: str, chunk: int) -> bytes | None:
        blob = self.r.get(self.key(run_id, "prep", chunk))
        return None if blob is None else zlib.decompress(blob)

    def closer(self, run_id: str) -> str | None:
        value = self.r.get(self.key(run_id, "closer"))
        return value.decode() if value else None

    def finish_chunk(self, run_id: str, chunk: int, *, ids_in: int, uploaded: int, failed: bool):
        keys = [
            self.key(run_id),
            self.key(run_id, "inflight"),
            self.key(run_id, "raw", chunk),
            self.key(run_id, "prep", chunk),
            self.key(run_id, "wake"),
        ]
        self._finish(keys=keys, args=[chunk, ids_in, uploaded, int(failed)])

    # --- the end of a run ---------------------------------------------------------------------
    def save_report(self, run_id: str, report: dict) -> None:
        pipe = self.r.pipeline()
        pipe.set(self.key(run_id, "report"), orjson.dumps(report), ex=self.ttl_s)
        pipe.hset(self.key(run_id), mapping={"status": report["status"]})
        pipe.delete(
            self.key(run_id, "inflight"), self.key(run_id, "wake"), self.key(run_id, "closer")
        )
        pipe.execute()

    def report(self, run_id: str) -> dict | None:
        blob = self.r.get(self.key(run_id, "report"))
        return None if blob is None else orjson.loads(blob)

    def exists(self, run_id: str) -> bool:
        return bool(self.r.exists(self.key(run_id)))
