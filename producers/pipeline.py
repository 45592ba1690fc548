"""Turn a source into a run: stage chunks in Redis and publish ONE flat chord, streaming.

    chord(header = [prepare(run, n) | upload(run, n) for each chunk n],  body = finalize(run))

The header is a generator: Celery publishes it lazily (one chunk ahead, to know which is last),
so a chunk is read and staged only when the staging window has room. Producer memory and Redis
memory stay flat whatever the audience size. `resume` publishes another such chord for a run:
its staged chunks without an outcome first, then the rows its source still holds.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from celery import Signature, chain, chord
from celery.result import AsyncResult

from audiencesync.domain.normalize import id_kind
from audiencesync.domain.report import build_report
from audiencesync.settings import Settings
from audiencesync.store.runs import RunStore
from producers.chunking import rechunk
from producers.sources import Source, one_line
from producers.spec import SourceSpec
from workers.app import app

log = logging.getLogger("audiencesync.producer")


@dataclass(frozen=True)
class RunRequest:
    audience_id: str
    mode: str = "add"
    hash_ids: bool = False
    name: str | None = None  # a declared audience's name (scheduled runs): metrics label, lock
    ad_account_id: str = ""  # the throttle's key; the audience's own id when unknown
    source: SourceSpec = field(default_factory=SourceSpec)  # recorded for `resume`
    destination: str = ""  # the Graph URL/version its preflight checked (set by planned_run)


def new_run_id() -> str:
    """Sortable by start time, unique without coordination."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def new_session_id() -> int:
    return secrets.randbits(62) + 1


def create_run(
    store: RunStore, request: RunRequest, source: Source, run_id: str | None = None
) -> str:
    run_id = run_id or new_run_id()
    named = {"audience_name": request.name} if request.name else {}
    store.create_run(
        run_id,
        {
            "audience_id": request.audience_id,
            "ad_account_id": request.ad_account_id,
            "mode": request.mode,
            "hash": int(request.hash_ids),
            "source": source.description,
            "destination": request.destination,
            **request.source.to_meta(),
            "estimated_ids": source.estimated_ids or 0,
            "session_id": new_session_id(),  # one upload session per run
            "started_at": time.time(),
            "chunks_staged": 0,
            "ids_read": 0,
            "producer_done": 0,
            "source_done": 0,
            **named,
        },
    )
    return run_id


def produce(store: RunStore, run_id: str, source: Source, settings: Settings) -> AsyncResult | None:
    """Stream the source into the run's chord; returns the chord body's result (None if empty)."""
    chunks = _estimating(store, run_id, source, rechunk(source.batches(), settings.chunk_size))
    return publish(store, run_id, settings, attempt=0, redrive={}, fresh=chunks, next_chunk=0)


def publish(
    store: RunStore,
    run_id: str,
    settings: Settings,
    *,
    attempt: int,
    redrive: dict[int, int],
    fresh: Iterator[list[str]],
    next_chunk: int,
) -> AsyncResult | None:
    """One chord: the staged chunks in `redrive` (chunk -> IDs), then `fresh` chunks staged from
    number `next_chunk` on as the window allows; its body is finalize for this attempt."""

    def header() -> Iterator[Signature]:
        for chunk, ids in sorted(redrive.items()):
            yield _chunk_tasks(run_id, chunk, ids)
        kind = store.existing(run_id).id_kind or None  # settled by an earlier attempt, or not yet
        for chunk, values in enumerate(_read(store, run_id, fresh), start=next_chunk):
            store.wait_for_room(run_id, settings.staging_window_chunks)
            if store.aborted(run_id):
                break  # the chord still closes with what was already published
            if kind is None and (kind := id_kind(values)):  # before any such chunk is prepared
                store.update(run_id, id_kind=kind)
            if not store.stage_raw(run_id, chunk, values, attempt=attempt):
                log.warning("run=%s taken over by a newer attempt; this producer stops", run_id)
                return  # the newer attempt's producer finishes the run
            yield _chunk_tasks(run_id, chunk, len(values))
        # Before Celery publishes the last task (it reads one ahead), so finalize sees it.
        store.staging_done(run_id)

    tasks = header()
    first = next(tasks, None)
    body = app.signature("audiencesync.finalize", args=(run_id,), kwargs={"attempt": attempt})
    if first is not None:
        # A real generator, not itertools.chain: Celery only applies a generator lazily.
        return chord(_prepend(first, tasks), body).apply_async()
    meta = store.run(run_id)
    if meta is None or meta.attempt != attempt:
        return None  # taken over by a newer attempt before this one staged anything
    if meta.chunks_staged == 0:  # nothing to upload, nothing to close
        store.save_report(run_id, build_report(run_id, meta, [], time.time()))
        return None
    return body.apply_async(([],))  # every chunk has its outcome: report them


def _estimating(
    store: RunStore, run_id: str, source: Source, chunks: Iterator[list[str]]
) -> Iterator[list[str]]:
    """Keeps the run's estimated size current when the source only knows the share it read
    (a CSV's bytes): the progress bar's ETA."""
    ids_read = 0
    for values in chunks:
        ids_read += len(values)
        if not source.estimated_ids and (share := source.progress()):
            store.update(run_id, estimated_ids=round(ids_read / share))
        yield values


def _prepend(first: Signature, rest: Iterator[Signature]) -> Iterator[Signature]:
    yield first
    yield from rest


def _chunk_tasks(run_id: str, chunk: int, ids: int) -> Signature:
    # By name: a producer never imports the task modules (nor their workers' clients).
    prepare = app.signature("audiencesync.prepare", args=(run_id, chunk, ids), immutable=True)
    return chain(prepare, app.signature("audiencesync.upload", args=(run_id, chunk)))


def _read(store: RunStore, run_id: str, chunks: Iterator[list[str]]) -> Iterator[list[str]]:
    """A source failing mid-stream ends the stream; the run reports it instead of hanging."""
    try:
        yield from chunks
    except Exception as exc:
        log.error("run=%s source failed: %s", run_id, one_line(exc))
        store.update(run_id, source_error=one_line(exc))
        return
    store.update(run_id, source_done=1)
