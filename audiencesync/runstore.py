"""Run state and staged chunks in Redis: the one module that knows the key layout.

    as:runs                     sorted set of run ids by start time
    as:run:{id}                 hash: what the run is, its progress counters, its outcome
    as:run:{id}:raw:{n}         chunk n as read from the source (claim check for `prepare`)
    as:run:{id}:prep:{n}        chunk n's payload, ready to send (zlib-compressed if set)
    as:run:{id}:inflight        chunk numbers staged and not yet finished (backpressure)
    as:run:{id}:wake            a nudge for a producer waiting for room in the staging window
    as:run:{id}:closer          one entry already sent, re-sent to close the upload session
    as:run:{id}:report          the final report (JSON)
    as:lock:audience:{name}     the run id holding a declared audience (SET NX, with a TTL)
Task messages carry only the run id and chunk number: never IDs, never secrets.
"""

from __future__ import annotations

import time
import zlib

import orjson
import redis

# Deletes or extends a lock only while it still holds the given value (the owner's run id).
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_REFRESH_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

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


class RunStore:
    def __init__(self, client: redis.Redis, *, ttl_s: int = 30 * 24 * 3600, compress_level=0):
        self.r = client
        self.ttl_s = ttl_s
        self.compress_level = compress_level  # zlib level for prepared payloads; 0 = none
        self._finish = client.register_script(_FINISH_CHUNK)
        self._release = client.register_script(_RELEASE_LOCK)
        self._refresh = client.register_script(_REFRESH_LOCK)

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

    def cancel(self, run_id: str) -> None:
        """An operator's abort: the same stop, reported as `cancelled` rather than `failed`."""
        self.abort(run_id, "cancelled by an operator (audiencesync cancel)")
        self.r.hsetnx(self.key(run_id), "cancelled", 1)

    def recent(self, limit: int) -> list[str]:
        return [v.decode() for v in self.r.zrevrange("as:runs", 0, limit - 1)]

    # --- one run at a time per declared audience ----------------------------------------------
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

    # --- staged chunks ------------------------------------------------------------------------
    def stage_raw(self, run_id: str, chunk: int, values: list[str], estimated_ids: int = 0):
        pipe = self.r.pipeline()
        if estimated_ids:
            pipe.hset(self.key(run_id), "estimated_ids", estimated_ids)
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

    def take_raw(self, run_id: str, chunk: int) -> bytes | None:
        """The staged chunk as encode_raw wrote it (prepare validates it without decoding)."""
        return self.r.get(self.key(run_id, "raw", chunk))

    def put_prepared(self, run_id: str, chunk: int, payload_json: bytes, closer: str | None):
        if self.compress_level:
            payload_json = zlib.compress(payload_json, self.compress_level)
        pipe = self.r.pipeline()
        pipe.set(self.key(run_id, "prep", chunk), payload_json, ex=self.ttl_s)
        if closer is not None:
            pipe.set(self.key(run_id, "closer"), closer, nx=True, ex=self.ttl_s)
        pipe.delete(self.key(run_id, "raw", chunk))
        pipe.execute()

    def get_prepared(self, run_id: str, chunk: int) -> bytes | None:
        blob = self.r.get(self.key(run_id, "prep", chunk))
        if blob is None or blob.startswith(b"{"):  # a JSON object, stored as it is
            return blob
        return zlib.decompress(blob)

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
