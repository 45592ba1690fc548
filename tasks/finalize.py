"""finalize (chord body, queue `critical`): aggregate the report, close the session, store it.

The report is built from the run's ledger, not from the chord's results: a header task delivered
twice may be counted twice by the chord and fire this body early, and a resumed run's chord only
holds the chunks it re-drove. Until the ledger holds an outcome for every staged chunk, finalize
re-enqueues itself (bounded), then reports what is missing as unaccounted.
"""

from __future__ import annotations

import logging
import random
import time

from audiencesync.errors import Deferred, GraphError, RetryableGraphError
from audiencesync.metrics import METRICS
from audiencesync.modes import chunk_op, is_sequential, unclosed_message
from audiencesync.replaceseq import CLOSE
from audiencesync.report import build_report
from audiencesync.settings import get_settings
from audiencesync.throttle.summary import throttle_section
from tasks.prepare import build_payload
from tasks.upload import retry_policy
from workers.app import app
from workers.resources import get_graph, get_guard, get_store, get_turns

log = logging.getLogger("audiencesync.finalize")
_rng = random.Random()
POLL_S = 2.0  # between looks at an incomplete ledger; far below any visibility timeout
CLOSE_DEFERRALS = 50  # turns waited at the throttle gate before the close is given up


def missing_chunks(meta: dict[str, str], outcomes: list[dict]) -> int | None:
    """Staged chunks without an outcome; None while the producer may still stage more."""
    if meta.get("producer_done") != "1":
        return None
    return int(meta.get("chunks_staged", 0)) - len(outcomes)


@app.task(bind=True, name="audiencesync.finalize", max_retries=None)
def finalize(
    self,
    results: list[dict],
    run_id: str,
    attempt: int = 0,
    first_at: float | None = None,
    close_calls: int = 0,
    deferrals: int = 0,
) -> dict:
    store = get_store()
    meta = store.meta(run_id)
    if not meta or int(meta.get("attempt", 0)) != attempt:
        return {}  # expired, or superseded by `resume`, whose own chord reports
    if (done := store.report(run_id)) is not None:
        return done  # delivered again after it reported
    outcomes = store.outcomes(run_id)
    first_at = first_at or time.time()
    settings = get_settings()
    kwargs = {
        "attempt": attempt,
        "first_at": first_at,
        "close_calls": close_calls,
        "deferrals": deferrals,
    }
    # The longest a chunk can still be on its way: its retries, then one redelivery.
    wait_s = settings.retry_budget_s + settings.visibility_timeout_s
    if missing_chunks(meta, outcomes) != 0 and time.time() - first_at < wait_s:
        raise self.retry(args=([], run_id), kwargs=kwargs, countdown=POLL_S)
    report = build_report(run_id, meta, outcomes, finished_at=time.time())
    guard = get_guard(run_id, meta)
    if meta.get("session_closed") == "1":
        report["session_closed"] = True  # closed by an earlier delivery of this task
    elif report["ids_uploaded"] and not meta.get("aborted") and _may_close(meta, report):
        try:
            error = _close_session(
                guard, meta, _closing_seq(run_id, meta), store.closer(run_id), close_calls > 0
            )
        except Deferred as wait:  # the close is an upload call too: it waits for its turn
            if deferrals < CLOSE_DEFERRALS:
                kwargs["deferrals"] = deferrals + 1
                countdown_s = retry_policy().defer_s(wait.wait_s, rng=_rng)
                raise self.retry(args=([], run_id), kwargs=kwargs, countdown=countdown_s) from None
            error = GraphError(f"the ad account stayed throttled ({wait})")
        else:
            kwargs["close_calls"] = close_calls = close_calls + 1
            policy, elapsed_s = retry_policy(), time.time() - first_at
            if error is not None and policy.should_retry(
                error, attempt=close_calls, elapsed_s=elapsed_s
            ):
                delay_s = policy.delay_s(error, attempt=close_calls, rng=_rng)
                log.info("run=%s closing the session again in %.1fs: %s", run_id, delay_s, error)
                raise self.retry(args=([], run_id), kwargs=kwargs, countdown=delay_s)
        report["requests"] += close_calls
        report["retries"] += max(close_calls - 1, 0)
        _record_close(store, run_id, report, error, meta)
    try:  # throttle figures and metrics are extras: the report is saved whatever they do
        report["throttle"] = throttle_section(
            guard.account, meta, outcomes, report, guard.gate.snapshot(guard.account)
        )
        METRICS.record_run(meta.get("audience_name") or meta["audience_id"], report, outcomes)
    except Exception:
        log.exception("run=%s throttle figures or metrics failed; the report is saved", run_id)
    store.save_report(run_id, report)
    if name := meta.get("audience_name"):  # a scheduled run: the audience may run again
        store.release_audience_lock(name, run_id)
    log.info(
        "run=%s %s: read=%d uploaded=%d rejected=%d failed=%d in %.1fs",
        run_id,
        report["status"],
        report["ids_read"],
        report["ids_uploaded"],
        sum(report["ids_rejected"].values()),
        report["ids_failed"],
        report["duration_s"],
    )
    return report


def _may_close(meta: dict[str, str], report: dict) -> bool:
    """Closing a replace session drops every member it lacks: only a whole one is closed."""
    return not is_sequential(meta) or not (report["chunks_failed"] or report["unaccounted"])


def _closing_seq(run_id: str, meta: dict[str, str]) -> int:
    """After every batch: a replace run's next seq from its counter (remembered across retries of
    this task), since chunks without entries sent no batch; otherwise after the last chunk's."""
    if is_sequential(meta):
        return get_turns().seq(run_id, CLOSE)
    return int(meta.get("chunks_staged", 0)) + 1


def _close_session(
    guard, meta: dict[str, str], batch_seq: int, closer: str | None, after_error: bool
) -> GraphError | None:
    """Close the run's upload session with a last batch that re-sends one entry already sent.

    Meta needs a final batch with last_batch_flag=true; re-adding an ID is harmless (a set), and
    it avoids relying on an empty batch being accepted. Retried like an upload (by the caller).
    """
    session = {"session_id": int(meta["session_id"]), "batch_seq": batch_seq}
    lease = guard.enter()  # raises Deferred when the account must wait
    try:
        guard.send(
            lease,
            lambda: get_graph().upload(
                meta["audience_id"],
                build_payload([closer or ""]),
                session | {"last_batch_flag": True},
                mode=chunk_op(meta, int(meta.get("chunks_staged", 1)) - 1),  # the last's op
            ),
            sample_latency=False,  # one entry: its latency says nothing about load
        )
        return None
    except RetryableGraphError as exc:
        return exc
    except GraphError as exc:
        if after_error and "closed" in exc.message:
            return None  # an earlier attempt was applied though its answer was lost
        return exc


def _record_close(store, run_id: str, report: dict, error: GraphError | None, meta) -> None:
    if error is None:
        report["session_closed"] = True
        store.update(run_id, session_closed=1)
        return
    report["session_close_error"] = str(error)
    if report["status"] == "completed":
        report["status"] = "completed_with_errors"
        report["message"] = unclosed_message(meta, str(error))
    log.warning("run=%s could not close session: %s", run_id, error)
