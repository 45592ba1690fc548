"""Turn a source into a run: stage chunks in Redis and publish ONE flat chord, streaming.

    chord(header = [prepare(run, n) | upload(run, n) for each chunk n],  body = finalize(run))

The header is a generator: Celery publishes it lazily (one chunk ahead, to know which is last),
so a chunk is read and staged only when the staging window has room. Producer memory and Redis
memory stay flat whatever the audience size.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from celery import chain, chord
from celery.result import AsyncResult

from audiencesync.report import build_report
from audiencesync.runstore import RunStore
from audiencesync.settings import Settings
from producers.chunking import rechunk
from producers.sources import Source
from tasks.finalize import finalize
from tasks.prepare import prepare
from tasks.upload import upload

log = logging.getLogger("audiencesync.producer")


@dataclass(frozen=True)
class RunRequest:
    audience_id: str
    mode: str = "add"
    hash_ids: bool = False
    name: str | None = None  # a declared audience's name (scheduled runs): metrics label, lock
    ad_account_id: str = ""  # the throttle's key; the audience's own id when unknown


def new_run_id() -> str:
    """Sortable by start time, unique without coordination."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


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
            "estimated_ids": source.estimated_ids or 0,
            "session_id": secrets.randbits(62) + 1,  # one upload session per run
            "started_at": time.time(),
            "chunks_staged": 0,
            "ids_read": 0,
            "producer_done": 0,
            **named,
        },
    )
    return run_id


def produce(store: RunStore, run_id: str, source: Source, settings: Settings) -> AsyncResult | None:
    """Stream the source into the run's chord; returns the chord body's result (None if empty)."""
    chunks = _guarded(store, run_id, rechunk(source.batches(), settings.chunk_size))
    first = next(chunks, None)
    if first is None:  # nothing to upload: no chord (an empty header would never fire)
        store.update(run_id, producer_done=1)
        store.save_report(run_id, build_report(run_id, store.meta(run_id), [], time.time()))
        return None

    def header() -> Iterator:
        ids_read = 0
        for number, values in enumerate(_prepend(first, chunks)):
            store.wait_for_room(run_id, settings.staging_window_chunks)
            if store.aborted(run_id):
                break  # the chord still closes with what was already published
            ids_read += len(values)
            store.stage_raw(run_id, number, values, _estimate(source, ids_read))
            yield chain(prepare.si(run_id, number, len(values)), upload.s(run_id, number))

    result = chord(header(), finalize.s(run_id)).apply_async()
    store.update(run_id, producer_done=1)
    return result


def _estimate(source: Source, ids_read: int) -> int:
    """The audience's size as far as the source can tell (exact, or from the share read)."""
    if source.estimated_ids:
        return source.estimated_ids
    share = source.progress()
    return round(ids_read / share) if share else 0


def _prepend(first: list[str], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from rest


def _guarded(store: RunStore, run_id: str, chunks: Iterator[list[str]]) -> Iterator[list[str]]:
    """A source failing mid-stream ends the stream; the run reports it instead of hanging."""
    try:
        yield from chunks
    except Exception as exc:
        log.error("run=%s source failed: %s", run_id, exc)
        store.update(run_id, source_error=str(exc).splitlines()[0] if str(exc) else repr(exc))
