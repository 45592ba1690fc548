"""Finish an interrupted run (`audiencesync resume RUN_ID`).

A run is left unfinished when its producer dies mid-stream (its chord never learns its size, so
its body never fires), when chunks are lost for longer than finalize waits, or when the token or
the source failed. Resume re-drives the staged chunks that have no outcome (they are still in
Redis), reads the rows past the last staged chunk from the recorded source, skipping the rows
already staged (so the source must give the same rows in the same order: a query needs an
ORDER BY), and publishes them under a new chord whose body, finalize, reports the whole run.
Chunks with an outcome, failed ones included, are never sent again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from celery.result import AsyncResult

from audiencesync.errors import ConfigError
from audiencesync.settings import Settings
from audiencesync.store.meta import Mode, Status
from audiencesync.store.runs import RunStore
from producers.chunking import rechunk, skip_values
from producers.pipeline import new_session_id, publish
from producers.sources import Source
from producers.spec import SourceSpec


@dataclass(frozen=True)
class ResumePlan:
    unfinished_chunks: int  # staged, without an outcome
    read_source: bool  # rows past the last staged chunk may remain
    spec: SourceSpec
    status: Status


def plan_resume(store: RunStore, run_id: str) -> ResumePlan:
    meta = store.existing(run_id)
    plan = ResumePlan(
        unfinished_chunks=store.staged_count(run_id),
        read_source=not meta.source_done,
        spec=SourceSpec.from_meta(meta.raw),
        status=meta.status,
    )
    if meta.replace_failed:
        raise ConfigError(
            f"run {run_id} cannot be resumed: a replace batch failed for good, and its session "
            "takes no batch after it; run the replace again (audiencesync upload --mode replace)"
        )
    if not (plan.unfinished_chunks or plan.read_source) and store.report(run_id) is not None:
        raise ConfigError(
            f"run {run_id} has nothing to resume ({plan.status}): every chunk has an outcome; "
            "to retry failed chunks, upload the audience again (re-adding IDs is harmless)"
        )
    if plan.read_source and meta.mode == Mode.MIRROR:
        raise ConfigError(
            f"mirror run {run_id} stopped before staging its whole difference and cannot be "
            "resumed from its source: run the mirror again (its snapshot was not updated, so it "
            "sends the whole difference again)"
        )
    if plan.read_source and plan.spec == SourceSpec():
        raise ConfigError(f"run {run_id} does not record its source; upload it again instead")
    return plan


def resume_run(
    store: RunStore, run_id: str, settings: Settings, source: Source | None
) -> AsyncResult | None:
    """Take the run over (earlier producers stop at their next chunk), then publish the rest."""
    closed = store.existing(run_id).session_closed
    # A closed upload session takes no more batches: what is left goes in a new one.
    session = {"session_id": new_session_id(), "session_closed": 0} if closed else {}
    attempt = store.begin_attempt(run_id, rereading=source is not None, **session)
    meta = store.existing(run_id)  # read after the fence: no other producer stages from here
    fresh: Iterator[list[str]] = iter(())
    if source is not None:  # given when plan_resume said read_source
        fresh = rechunk(skip_values(source.batches(), meta.ids_read), settings.chunk_size)
    return publish(
        store,
        run_id,
        settings,
        attempt=attempt,
        redrive=store.inflight(run_id),
        fresh=fresh,
        next_chunk=meta.chunks_staged,
    )
