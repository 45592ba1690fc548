"""upload (queue `critical`): send one prepared chunk; retry with backoff; record the outcome.

Retries are re-enqueued with a countdown (`self.retry`), never slept in the worker thread. So is
a call the throttle gate holds back (the account cools down or is busy): that is no failed
attempt and does not run down the chunk's retry budget. A chunk's failure is returned as data,
so the chord body always runs and reports it. The outcome goes to the run's ledger once: a
redelivered upload whose chunk has one returns it, unsent. A replace run's chunks send one at a
time, in batch_seq order (audiencesync/store/replace.py); waiting for that turn is a deferral too.
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
from audiencesync.store.meta import RunMeta
from tasks import sending
from workers.app import app
from workers.leased import LeasedTask
from workers.resources import get_graph, get_guard, get_store, get_turns

log = logging.getLogger("audiencesync.upload")
NEW_CALLS = {"requests": 0, "throttled": 0, "deferrals": 0, "deferred_s": 0.0}
TURN_RETRY_S = 0.25  # a replace chunk that found the turn taken looks again after about this


@app.task(bind=True, name="audiencesync.upload", max_retries=None, base=LeasedTask, run_arg=1,
          finishes_chunk=True, waits_for_holder=True)  # fmt: skip
def upload(self, summary: dict, run_id: str, chunk: int, calls: dict | None = None) -> dict:
    meta: RunMeta | None = None  # read once: the call and the replace turn's hand-over need it
    try:
        meta = get_store().existing(run_id)
        outcome = _upload(self, summary, run_id, chunk, calls, meta)
    except Retry:
        raise  # a replace chunk keeps its turn: its retry re-sends the same batch_seq first
    except Exception as exc:  # a bug must fail this chunk, not the whole chord
        log.exception("run=%s chunk=%s upload failed unexpectedly", run_id, chunk)
        result = dict(summary, failed=f"upload failed: {type(exc).__name__}")
        result["ids_failed"] = summary.get("entries", summary["ids_in"])
        outcome = get_store().finish_chunk(run_id, chunk, result)
    try:
        if meta is not None and is_sequential(meta):
            _end_turn(run_id, chunk, outcome)
    except Exception:  # never fail the chord: the turn then expires, and finalize never closes
        # a replace session with a failed chunk
        log.exception("run=%s chunk=%s could not pass the replace turn on", run_id, chunk)
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
    session = chunk_session(meta, chunk)[1]
    if is_sequential(meta):  # replace: wait for the run's turn; the batch_seq comes with it
        session["batch_seq"] = _take_turn(task, run_id, chunk, calls)
        if reason := store.aborted(run_id):  # looked at again: an earlier batch may have failed
            return fail(f"not sent: {reason}")
    guard = get_guard(run_id, meta)

    def admitted() -> None:
        calls["requests"] += 1
        result.update(requests=calls["requests"], retries=calls["requests"] - 1)

    try:
        sent = sending.send(
            guard,
            lambda: get_graph().upload(meta.audience_id, payload, session, mode=op),
            admitted=admitted,
        )
    except Deferred as wait:
        sending.defer(task, wait.wait_s, calls, {"kwargs": {"calls": calls}})
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
            retry={"kwargs": {"calls": calls}},
            what=(log, f"run={run_id} chunk={chunk} retry"),
        )
        return fail(f"gave up after {calls['requests']} calls: {exc}")
    except GraphError as exc:
        return fail(str(exc))
    return finish(
        uploaded=result["entries"],
        num_received=sent.num_received,
        num_invalid_entries=sent.num_invalid_entries,
        invalid_samples=sent.invalid_samples,
        latency_s=round(sent.latency_s, 4),
    )


def _take_turn(task, run_id: str, chunk: int, calls: dict) -> int:
    """Wait (briefly) for the replace run's turn, or come back for it; the chunk's batch_seq."""
    turns = get_turns()
    waited_from = time.monotonic()
    has_turn = turns.wait(run_id, chunk, get_settings().throttle_max_wait_s)
    calls["deferred_s"] += time.monotonic() - waited_from  # not part of the retry budget
    if not has_turn:
        sending.defer(task, TURN_RETRY_S, calls, {"kwargs": {"calls": calls}})
    return turns.seq(run_id, chunk)


def _end_turn(run_id: str, chunk: int, outcome: dict) -> None:
    """A replace chunk's final outcome: a failure stops the run (fail fast: no later batch could
    take effect) before the turn passes on, so the next holder sees it and sends nothing."""
    if outcome.get("failed"):
        get_store().fail_replace(run_id, f"chunk {chunk}: {outcome['failed']}")
    get_turns().release(run_id, chunk)
