"""Run state and staged chunks in Redis: the one module that knows the key layout.

    as:runs                     sorted set of run ids by start time
    as:run:{id}                 hash: what the run is (its source spec, never a password), its
                                progress counters, attempt (bumped by resume), its outcome;
                                read typed, as a RunMeta (meta.py)
    as:run:{id}:raw:{n}         chunk n as read from the source (claim check for `prepare`); kept
                                until the chunk finishes, so a redelivered `prepare` can redo it
    as:run:{id}:prep:{n}        chunk n's payload, ready to send (zlib-compressed if set)
    as:run:{id}:inflight        hash chunk -> IDs: staged and not finished (backpressure; resume)
    as:run:{id}:ledger          hash chunk -> final outcome (JSON), written once; the report
    as:run:{id}:wake            a nudge for a producer waiting for room in the staging window
    as:run:{id}:closer:{op}     one entry already sent, re-sent to close that op's session
    as:run:{id}:report          the final report (JSON)
    as:run:{id}:finished        a latch opened with the report: `wait_finished` blocks on it
    as:run:{id}:replace:*       a replace run's batch-1 slot and batch_seqs (replace.py)
    as:lock:audience:{name}     the run holding a declared audience (SET NX, a TTL; locks.py)
    as:leases                   sorted set "{id}/{n}" -> deadline: who vouches for chunk n, until
                                (n = -1: the run's finalize, from the producer's last chunk on)
    as:run:{id}:holder          hash chunk -> token of the process working on it (recovery/leases)
    as:reap:{what}              a reaper's claim on a lapsed lease or a run (SET NX, short TTL)
    as:workers:{queue}          sorted set worker -> last heartbeat (recovery/liveness.py)
Task messages carry only the run id and chunk number: never IDs, never secrets.
"""

from __future__ import annotations

import time

import orjson
import redis

from audiencesync.errors import ConfigError
from audiencesync.settings import Settings
from audiencesync.store import lua
from audiencesync.store.locks import AudienceLocks, open_latch, wait_latch
from audiencesync.store.meta import OPS, RunMeta
from audiencesync.store.staging import StagedChunks

CANCEL_REASON = "cancelled by an operator (audiencesync cancel)"


class RunStore(AudienceLocks, StagedChunks):
    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> RunStore:
        return cls(
            client,
            ttl_s=settings.run_ttl_s,
            compress_level=settings.staging_compress_level,
            lease_s=settings.lease_s,
        )

    def __init__(
        self, client: redis.Redis, *, ttl_s: int = 30 * 24 * 3600, compress_level=0, lease_s=30.0
    ):
        self.r = client
        self.ttl_s = ttl_s
        self.lease_s = lease_s  # a staged chunk is leased (queued) this long: see recovery/
        self._stage = client.register_script(lua.STAGE_CHUNK)
        self._finish = client.register_script(lua.FINISH_CHUNK)
        self._stall = client.register_script(lua.MARK_STALLED)
        self._release = client.register_script(lua.RELEASE_LOCK)
        self._refresh = client.register_script(lua.REFRESH_LOCK)
        self.compress_level = compress_level  # zlib level for prepared payloads; 0 = none

    @staticmethod
    def key(run_id: str, *parts: object) -> str:
        return ":".join(("as:run", run_id, *map(str, parts)))

    # --- run meta and progress -------------------------------------------------------------
    def create_run(self, run_id: str, meta: dict[str, str | int | float]) -> None:
        now = time.time()
        pipe = self.r.pipeline()
        fields = {"status": "running", "attempt": 0, "progress_at": now, **meta}
        pipe.hset(self.key(run_id), mapping=fields)
        pipe.expire(self.key(run_id), self.ttl_s)
        pipe.zadd("as:runs", {run_id: now})
        pipe.execute()

    def meta(self, run_id: str) -> dict[str, str]:
        """The run's hash as Redis holds it (strings); modules read run() instead."""
        return {k.decode(): v.decode() for k, v in self.r.hgetall(self.key(run_id)).items()}

    def run(self, run_id: str) -> RunMeta | None:
        """The run's meta, typed (meta.py); None when this Redis holds no such run."""
        raw = self.meta(run_id)
        return RunMeta.parse(raw) if raw else None

    def existing(self, run_id: str) -> RunMeta:
        """run(), or a one-line error (a typo, or a run whose state expired)."""
        if (meta := self.run(run_id)) is None:
            raise ConfigError(f"no run {run_id} in this Redis: check the id and REDIS_URL")
        return meta

    def update(self, run_id: str, **fields: str | int | float) -> None:
        self.r.hset(self.key(run_id), mapping=fields)

    def abort(self, run_id: str, reason: str) -> None:
        """Stop the run: the producer stops reading, queued uploads fail without calling Meta."""
        self.r.hsetnx(self.key(run_id), "aborted", reason)

    def fail_replace(self, run_id: str, reason: str) -> None:
        """A replace batch failed for good: no later batch could take effect, so none is sent,
        and the session is never closed. The first reason (or an earlier abort's) is kept."""
        self.r.hsetnx(self.key(run_id), "replace_failed", self.aborted(run_id) or reason)
        self.abort(run_id, "an earlier replace batch failed")

    def aborted(self, run_id: str) -> str | None:
        value = self.r.hget(self.key(run_id), "aborted")
        return value.decode() if value else None

    def count(self, run_id: str, **amounts: float) -> None:
        """Add to the run's counters (throttle events, cool-down seconds), from any worker."""
        pipe = self.r.pipeline()
        for name, amount in amounts.items():
            pipe.hincrbyfloat(self.key(run_id), name, amount)
        pipe.execute()

    def cancel(self, run_id: str) -> None:
        """An operator's abort: the same stop, reported as `cancelled` rather than `failed`."""
        self.abort(run_id, CANCEL_REASON)
        self.r.hsetnx(self.key(run_id), "cancelled", 1)

    def recent(self, limit: int) -> list[str]:
        return [v.decode() for v in self.r.zrevrange("as:runs", 0, limit - 1)]

    def begin_attempt(self, run_id: str, *, rereading: bool, **fields: str | int | float) -> int:
        """Start another attempt at a run (resume); returns its number. Earlier producers are
        fenced off, the old report is dropped; a rejected token or a failed source is forgotten
        only by an attempt that reads the source again, a cancel always (the report says what
        it dropped: `resumed_after_cancel`)."""
        cancelled = self.r.hget(self.key(run_id), "cancelled") is not None
        pipe = self.r.pipeline()
        pipe.hincrby(self.key(run_id), "attempt", 1)
        fields = {"status": "running", "producer_done": 0, "progress_at": time.time(), **fields}
        pipe.hset(self.key(run_id), mapping=fields)
        if rereading:
            pipe.hdel(self.key(run_id), "aborted", "source_error")
        if cancelled:
            pipe.hdel(self.key(run_id), "aborted", "cancelled")
            pipe.hset(self.key(run_id), "resumed_after_cancel", 1)
        pipe.delete(self.key(run_id, "report"), self.key(run_id, "finished"))
        return int(pipe.execute()[0])

    def mark_stalled(self, now: float, stall_after_s: float) -> list[str]:
        """Mark running runs with no progress for stall_after_s as `stalled`; returns their ids
        (one goes back to `running` when one of its chunks finishes)."""
        self.r.zremrangebyscore("as:runs", "-inf", now - self.ttl_s)  # their state has expired
        stalled = []
        for raw_id, _ in self.r.zscan_iter("as:runs"):
            run_id = raw_id.decode()
            if self._stall(keys=[self.key(run_id)], args=[now - stall_after_s]):
                stalled.append(run_id)
        return stalled

    # --- the ledger: each chunk's final outcome, once ------------------------------------------
    def finish_chunk(self, run_id: str, chunk: int, result: dict) -> dict:
        """Record `result` as the chunk's outcome unless one is recorded; returns the recorded."""
        keys = [
            self.key(run_id),
            self.key(run_id, "inflight"),
            self.key(run_id, "raw", chunk),
            self.key(run_id, "prep", chunk),
            self.key(run_id, "wake"),
            self.key(run_id, "ledger"),
        ]
        uploaded, failed = result["uploaded"], int(bool(result["failed"]))
        args = [chunk, orjson.dumps(result), result["ids_in"], uploaded, failed, time.time()]
        return orjson.loads(self._finish(keys=keys, args=[*args, self.ttl_s]))

    def outcome(self, run_id: str, chunk: int) -> dict | None:
        blob = self.r.hget(self.key(run_id, "ledger"), chunk)
        return None if blob is None else orjson.loads(blob)

    def outcomes(self, run_id: str) -> list[dict]:
        return [orjson.loads(v) for v in self.r.hvals(self.key(run_id, "ledger"))]

    # --- the end of a run ---------------------------------------------------------------------
    def save_report(self, run_id: str, report: dict) -> None:
        pipe = self.r.pipeline()
        pipe.set(self.key(run_id, "report"), orjson.dumps(report), ex=self.ttl_s)
        pipe.hset(self.key(run_id), mapping={"status": report["status"]})
        # The closer is an ID: none stays behind. Unfinished chunks stay, for resume.
        closers = [self.key(run_id, "closer", op) for op in OPS]
        pipe.delete(self.key(run_id, "wake"), *closers)
        pipe.execute()
        open_latch(self.r, self.key(run_id, "finished"), self.ttl_s)

    def wait_finished(self, run_id: str, timeout_s: float) -> bool:
        """Block until the run's report is saved, at most timeout_s (no polling)."""
        return wait_latch(self.r, self.key(run_id, "finished"), timeout_s, self.ttl_s)

    def report(self, run_id: str) -> dict | None:
        blob = self.r.get(self.key(run_id, "report"))
        return None if blob is None else orjson.loads(blob)
