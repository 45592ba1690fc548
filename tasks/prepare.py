"""prepare (queue `standard`): raw staged chunk -> normalised payload staged for upload.

Idempotent: the raw chunk stays staged until the chunk finishes, so a redelivered prepare redoes
the same pure work; one whose chunk already has an outcome passes that outcome on.
"""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded

from audiencesync.domain.modes import chunk_op
from audiencesync.domain.normalize import RAW, prepare_staged
from audiencesync.domain.report import chunk_result
from audiencesync.graph import build_payload
from audiencesync.settings import get_settings
from workers.app import app
from workers.leased import LeasedTask
from workers.resources import get_store

log = logging.getLogger("audiencesync.prepare")


@app.task(name="audiencesync.prepare", ignore_result=True, base=LeasedTask, run_arg=0)
def prepare(run_id: str, chunk: int, ids_in: int) -> dict:
    """Never raises for a chunk's failure: it returns it as data, so the chord body still runs."""
    store = get_store()
    try:
        if (done := store.outcome(run_id, chunk)) is not None:
            return done  # a redelivery after the chunk finished: upload passes it on
        raw = store.take_raw(run_id, chunk)
        if raw is None:
            return chunk_result(
                chunk,
                ids_in,
                failed="staged chunk missing from Redis (expired?)",
                ids_failed=ids_in,
            )
        meta = store.existing(run_id)
        prepared = prepare_staged(raw, ids_in, hash_ids=meta.hash_ids, kind=meta.id_kind or RAW)
        if prepared.entries:
            closer = prepared.entries[0]
            op = chunk_op(meta, chunk)  # each operation's session is closed with its own entry
            store.put_prepared(run_id, chunk, build_payload(prepared.entries), closer, op=op)
        return chunk_result(
            chunk,
            ids_in,
            entries=len(prepared.entries),
            rejected=prepared.rejected,
            rejected_samples=prepared.samples,
            duplicates=prepared.duplicates,
        )
    except SoftTimeLimitExceeded:  # the hard limit, a little later, would leave no outcome
        limit_s = get_settings().prepare_time_limit_s
        log.error("run=%s chunk=%s prepare took longer than %ss", run_id, chunk, limit_s)
        reason = f"prepare took longer than AUDIENCESYNC_PREPARE_TIME_LIMIT_S ({limit_s}s)"
        return chunk_result(chunk, ids_in, failed=reason, ids_failed=ids_in)
    except Exception as exc:  # a bug or a Redis fault must fail this chunk, not the whole chord
        log.exception("run=%s chunk=%s prepare failed", run_id, chunk)
        return chunk_result(
            chunk, ids_in, failed=f"prepare failed: {type(exc).__name__}", ids_failed=ids_in
        )
