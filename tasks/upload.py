"""upload (queue `critical`): send one prepared chunk; retry with backoff; record the outcome.

Retries are re-enqueued with a countdown (`self.retry`), never slept in the worker thread. So is
a call the throttle gate holds back (the account cools down or is busy): that is no failed
attempt and does not run down the chunk's retry budget. A chunk's failure is returned as data,
so the chord body always runs and reports it. The outcome goes to the run's ledger once: a
redelivered upload whose chunk has one returns it, unsent. A replace run's batch 1 goes alone,
the others in parallel once Meta accepted it, as adds after a cutover (tasks/replacing.py);
waiting for batch 1 or for the cutover's close is a deferral too.
"""

from __future__ import annotations

import logging
import time

from celery.exceptions import Retry

from audiencesync.domain.modes import chunk_op, chunk_session, is_sequential
from audiencesync.errors import (
    Deferred,
    GraphError,
    RetryableGraphError,
    ThrottledError,
    TokenError,
)
from audiencesync.graph.destination import refusal
from audiencesync.settings import get_settings
from audiencesync.store.meta import Mode, RunMeta
from tasks import sending
from tasks.closing import send_close
from tasks.replacing import (
    Batch,
    get_replace,
    refusal_message,
    session_over,
)
from workers.app import app
from workers.leased import LeasedTask
from workers.resources import get_graph, get_guard, get_store

log = logging.getLogger("audiencesync.upload")
NEW_CALLS = {"requests": 0, "throttled": 0, "deferrals": 0, "deferred_s": 0.0}


@app.task(bind=True, name="audiencesync.upload", max_retries=None, base=LeasedTask, run_arg=1,
          finishes_chunk=True, waits_for_holder=True)  # fmt: skip
def upload(self, summary: dict, run_id: str, chunk: int, calls: dict | None = None) -> dict:
    meta: RunMeta | None = None  # read once: the call and the replace session need it
    try:
        meta = get_store().existing(run_id)
        outcome = _upload(self, summary, run_id, chunk, calls, meta)
    except Retry:
        raise  # a replace chunk's retry re-sends its batch_seq (remembered in store/replace.py)
    except Exception as exc:  # a bug must fail this chunk, not the whole chord
        log.exception("run=%s chunk=%s upload failed unexpectedly", run_id, chunk)
        result = dict(summary, failed=f"upload failed: {type(exc).__name__}")
        result["ids_failed"] = summary.get("entries", summary["ids_in"])
        outcome = get_store().finish_chunk(run_id, chunk, result)
    try:
        if meta is not None and is_sequential(meta):
            _end_replace(run_id, chunk, outcome)
    except Exception:  # never fail the chord
        log.exception("run=%s chunk=%s could not record the replace outcome", run_id, chunk)
    # The chord hands every header result to finalize's arguments, which Flower shows: only a
    # reference goes there (Meta's invalid-entry samples stay in the ledger).
    return {"chunk": chunk, "failed": bool(outcome.get("failed"))}


def _upload(
    task, summary: dict, run_id: str, chunk: int, calls: dict | None, meta: RunMeta
) -> dict:
    store = get_store()
    if (done := store.outcome(run_id, chunk)) is not None:
        return done
    result = dict(summary)
    # A retry carries its counts (a message from before an upgrade may lack newer ones).
    calls = {**NEW_CALLS, "first_at": time.time(), **(calls or {})}
    result.update(
        requests=calls["requests"],
        throttled=calls["throttled"],
        retries=max(calls["requests"] - 1, 0),
        deferrals=calls["deferrals"],
        deferred_s=round(calls["deferred_s"], 3),
    )

    def finish(**outcome) -> dict:
        result.update(outcome)
        return store.finish_chunk(run_id, chunk, result)

    def fail(reason: str) -> dict:
        log.warning("run=%s chunk=%s failed: %s", run_id, chunk, reason)
        return finish(failed=reason, ids_failed=result.get("entries", result["ids_in"]))

    if result["failed"] or not result.get("entries"):
        return finish()
    if reason := store.aborted(run_id):
        return fail(f"not sent: {reason}")
    if reason := refusal(meta.destination, get_settings()):  # this worker points elsewhere
        return fail(f"not sent: {reason}")
    payload = store.get_prepared(run_id, chunk)
    if payload is None:
        return fail("prepared chunk missing from Redis (expired?)")
    op = chunk_op(meta, chunk)
    session: dict | None = chunk_session(meta, chunk)[1]
    guard = get_guard(run_id, meta)
    retry = {"kwargs": {"calls": calls}}
    replace = get_replace() if is_sequential(meta) else None
    batch: Batch | None = None  # a replace run's: how this chunk goes now
    if replace is not None:  # batch 1 alone, then in parallel; adds after a cutover
        try:
            batch = replace.next_batch(
                run_id, chunk, meta, session or {}, lambda b: _close(guard, store, run_id, meta, b)
            )
        except Deferred as wait:
            sending.defer(task, wait.wait_s, calls, retry)
        op, session = Mode(batch.op), batch.session
        result["sent_as"] = op

    def admitted() -> None:
        calls["requests"] += 1
        result.update(requests=calls["requests"], retries=calls["requests"] - 1)
        if replace is not None and batch is not None and batch.first:
            replace.first_sending(run_id)

    try:
        sent = sending.send(
            guard,
            lambda: get_graph().upload(meta.audience_id, payload, session, mode=op),
            admitted=admitted,
        )
    except Deferred as wait:
        sending.defer(task, wait.wait_s, calls, retry)
    except TokenError as exc:
        store.abort(
            run_id,
            f"the access token was rejected ({exc}): "
            "set a valid AUDIENCESYNC_ACCESS_TOKEN and run again",
        )
        return fail(str(exc))
    except RetryableGraphError as exc:
        if isinstance(exc, ThrottledError):
            calls["throttled"] += 1
            result["throttled"] = calls["throttled"]
        sending.retry_if_allowed(
            task,
            exc,
            calls,
            attempt=calls["requests"],
            elapsed_s=time.time() - calls["first_at"] - calls["deferred_s"],
            cool_wait_s=guard.cool_wait_s,
            retry=retry,
            what=(log, f"run={run_id} chunk={chunk} retry"),
        )
        return fail(f"gave up after {calls['requests']} calls: {exc}")
    except GraphError as exc:
        if replace is not None and batch is not None and op == Mode.REPLACE:
            if batch.first and (refused := refusal_message(exc)):
                store.abort(run_id, refused)
                return fail(refused)
            if session_over(exc):  # Meta ended the session: these IDs go as an add
                replace.ended_by_meta(run_id, exc.subcode)
                sending.defer(task, 0.0, calls, retry)
        return fail(str(exc))
    if replace is not None and batch is not None and op == Mode.REPLACE:
        replace.accepted(run_id, batch, sent.latency_s)
    return finish(
        uploaded=result["entries"],
        num_received=sent.num_received,
        num_invalid_entries=sent.num_invalid_entries,
        invalid_samples=sent.invalid_samples,
        latency_s=round(sent.latency_s, 4),
    )


def _end_replace(run_id: str, chunk: int, outcome: dict) -> None:
    """A replace chunk that failed for good stops the run (fail fast: a session missing a batch
    must not be closed), unless it failed as an add after the session ended."""
    if outcome.get("failed") and outcome.get("sent_as") != Mode.ADD:
        get_store().fail_replace(run_id, f"chunk {chunk}: {outcome['failed']}")


def _close(guard, store, run_id: str, meta: RunMeta, batch: dict) -> None:
    """Send a replace session's closing batch at a cutover: one entry of the source."""
    session = {"session_id": meta.session_id, **batch}
    send_close(guard, meta.audience_id, Mode.REPLACE, session, store.closer(run_id, Mode.REPLACE))
