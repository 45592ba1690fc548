"""Staged chunks: the claim checks a run's tasks read, bounded by the staging window (a mixin of
RunStore, which knows the key layout: runs.py)."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

import redis
from redis.commands.core import Script

from audiencesync.recovery.leases import FINALIZE, LEASES
from audiencesync.recovery.leases import member as lease_member


def encode_raw(values: list[str]) -> bytes:
    blob = "\n".join(values).encode("utf-8", "surrogateescape")
    if blob.count(b"\n") != len(values) - 1:
        raise ValueError("a staged value contains a newline; sources must remove them")
    return blob


class StagedChunks:
    r: redis.Redis
    ttl_s: int
    lease_s: float
    compress_level: int
    _stage: Script
    key: Callable[..., str]

    def stage_raw(self, run_id: str, chunk: int, values: list[str], *, attempt: int) -> bool:
        """Stage chunk `chunk`; False when another attempt (a resume) has taken the run over."""
        keys = [self.key(run_id), self.key(run_id, "raw", chunk), self.key(run_id, "inflight")]
        args = [chunk, encode_raw(values), len(values), attempt, time.time(), self.ttl_s]
        if not self._stage(keys=keys, args=args):
            return False
        self.r.zadd(LEASES, {lease_member(run_id, chunk): time.time() + self.lease_s}, nx=True)
        return True

    def staging_done(self, run_id: str) -> None:
        """Every chunk is staged (or the producer stopped). From here the run's report is leased
        (recovery/leases.py: FINALIZE), so a finalize that dies or never comes is found."""
        pipe = self.r.pipeline()
        pipe.hset(self.key(run_id), "producer_done", 1)
        pipe.zadd(LEASES, {lease_member(run_id, FINALIZE): time.time() + self.lease_s}, nx=True)
        pipe.execute()

    def inflight(self, run_id: str) -> dict[int, int]:  # staged, not finished: chunk -> IDs
        return {int(k): int(v) for k, v in self.r.hgetall(self.key(run_id, "inflight")).items()}

    def staged_count(self, run_id: str) -> int:
        return int(self.r.hlen(self.key(run_id, "inflight")))

    def wait_for_room(self, run_id: str, window_chunks: int, *, poll_s: float = 1.0) -> None:
        """Block until fewer than window_chunks chunks are staged and unfinished."""
        while self.staged_count(run_id) >= window_chunks:
            self.r.blpop([self.key(run_id, "wake")], timeout=poll_s)

    def take_raw(self, run_id: str, chunk: int) -> bytes | None:
        """The staged chunk as encode_raw wrote it (prepare validates it without decoding)."""
        return self.r.get(self.key(run_id, "raw", chunk))

    def put_prepared(
        self, run_id: str, chunk: int, payload_json: bytes, closer: str | None, op: str = "add"
    ) -> None:
        if self.compress_level:
            payload_json = zlib.compress(payload_json, self.compress_level)
        pipe = self.r.pipeline()
        pipe.set(self.key(run_id, "prep", chunk), payload_json, ex=self.ttl_s)
        if closer is not None:
            pipe.set(self.key(run_id, "closer", op), closer, nx=True, ex=self.ttl_s)
        pipe.execute()

    def get_prepared(self, run_id: str, chunk: int) -> bytes | None:
        blob = self.r.get(self.key(run_id, "prep", chunk))
        if blob is None or blob.startswith(b"{"):  # a JSON object, stored as it is
            return blob
        return zlib.decompress(blob)

    def closer(self, run_id: str, op: str = "add") -> str | None:
        value = self.r.get(self.key(run_id, "closer", op))
        return value.decode() if value else None
