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
from audiencesync.mirrorrun import MIRROR, Session, chunk_session, lock_name, sessions
from audiencesync.modes import is_sequential, unclosed_message
from audiencesync.replaceseq import CLOSE
from audiencesync.report import build_report
from audiencesync.settings import get_settings
from audiencesync.throttle.summary import throttle_section
from tasks.prepare import build_payload
from tasks.upload import retry_policy
from workers.app import app
from workers.leased import LeasedTask
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


@app.task(bind=True, name="audiencesync.finalize", max_retries=None, base=LeasedTask)
def finalize(
    self,
    results: list[dict],
    run_id: str,
    attempt: int = 0,
    first_at: float | None = None,
    close_calls: int = 0,
    deferrals: int = 0,
    close_sent: int = 0,
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
        "close_sent": close_sent,
        "deferrals": deferrals,
    }
    # The longest a chunk can still be on its way: its retries, then one redelivery.
    wait_s = settings.retry_budget_s + settings.visibility_timeout_s
    if missing_chunks(meta, outcomes) != 0 and time.time() - first_at < wait_s:
        raise self.retry(args=([], run_id), kwargs=kwargs, countdown=POLL_S)
    report = build_report(run_id, meta, outcomes, finished_at=time.time())
    guard = get_guard(run_id, meta)
    to_close = open_sessions(meta, outcomes)
    report["session_closed"] = not to_close and bool(report["ids_uploaded"])
    if to_close and not meta.get("aborted") and _may_close(meta, report):
        try:
            error, sent = _close_sessions(guard, store, run_id, meta, to_close, close_calls > 0)
        except Deferred as wait:  # the close is an upload call too: it waits for its turn
            if deferrals < CLOSE_DEFERRALS:
                kwargs["deferrals"] = deferrals + 1
                countdown_s = retry_policy().defer_s(wait.wait_s, rng=_rng)
                raise self.retry(args=([], run_id), kwargs=kwargs, countdown=countdown_s) from None
            error = GraphError(f"the ad account stayed throttled ({wait})")
        else:
            kwargs["close_calls"] = close_calls = close_calls + 1
            kwargs["close_sent"] = close_sent = close_sent + sent
            policy, elapsed_s = retry_policy(), time.time() - first_at
            if error is not None and policy.should_retry(
                error, attempt=close_calls, elapsed_s=elapsed_s
            ):
                delay_s = policy.delay_s(error, attempt=close_calls, rng=_rng)
                log.info("run=%s closing the session again in %.1fs: %s", run_id, delay_s, error)
                raise self.retry(args=([], run_id), kwargs=kwargs, countdown=delay_s)
        report["requests"] += close_sent
        report["retries"] += max(close_calls - 1, 0)
        _record_close(report, error, meta)
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
    if meta.get("mode") == MIRROR:
        store.release_audience_lock(lock_name(meta["audience_id"]), run_id)
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


def open_sessions(meta: dict[str, str], outcomes: list[dict]) -> list[Session]:
    """Sessions that took a batch and are not closed yet (by an earlier delivery of finalize)."""
    sent = {c["chunk"] for c in outcomes if c["uploaded"]}
    return [
        s
        for s in sessions(meta)
        if meta.get(s.closed_field) != "1"
        and any(chunk_session(meta, chunk)[0] == s for chunk in sent)
    ]


def _may_close(meta: dict[str, str], report: dict) -> bool:
    """Closing a replace session drops every member it lacks: only a whole one is closed."""
    return not is_sequential(meta) or not (report["chunks_failed"] or report["unaccounted"])


def _closing_seq(run_id: str, meta: dict[str, str], session: Session) -> int:
    """After every batch of the session: a replace run's next seq from its counter (remembered
    across retries of this task), since chunks without entries sent no batch; otherwise after
    the session's last chunk (a mirror run's additions end where its removals start)."""
    if is_sequential(meta):
        return get_turns().seq(run_id, CLOSE)
    ends = [s.first_chunk for s in sessions(meta) if s.first_chunk > session.first_chunk]
    end = ends[0] if ends else int(meta.get("chunks_staged", 0))
    return end - session.first_chunk + 1


def _close_sessions(
    guard, store, run_id: str, meta: dict[str, str], to_close: list[Session], after_error: bool
) -> tuple[GraphError | None, int]:
    """Close each session with a last batch that re-sends one entry already sent.

    Meta needs a final batch with last_batch_flag=true; re-adding (or re-removing) an ID is
    harmless (a set), and it avoids relying on an empty batch being accepted. Retried like an
    upload (by the caller); a session closed here is recorded at once, so it is closed once.
    Returns the error that stopped it, if any, and the calls it made.
    """
    for sent, session in enumerate(to_close, start=1):
        batch_seq = _closing_seq(run_id, meta, session)
        batch = {"session_id": session.session_id, "batch_seq": batch_seq}
        closer = store.closer(run_id, session.op)
        try:
            _send_close(guard, meta["audience_id"], session.op, batch, closer)
        except RetryableGraphError as exc:
            return exc, sent
        except GraphError as exc:
            if not (after_error and "closed" in exc.message):
                return exc, sent  # else an earlier attempt was applied though its answer was lost
        store.update(run_id, **{session.closed_field: 1})
    return None, len(to_close)


def _send_close(guard, audience_id: str, op: str, batch: dict, closer: str | None) -> None:
    lease = guard.enter()  # raises Deferred when the account must wait
    guard.send(
        lease,
        lambda: get_graph().upload(
            audience_id,
            build_payload([closer or ""]),
            batch | {"last_batch_flag": True},
            mode=op,
        ),
        sample_latency=False,  # one entry: its latency says nothing about load
    )


def _record_close(report: dict, error: GraphError | None, meta: dict[str, str]) -> None:
    if error is None:
        report["session_closed"] = True
        return
    report["session_close_error"] = str(error)
    if report["status"] == "completed":
        report["status"] = "completed_with_errors"
        report["message"] = unclosed_message(meta, str(error))
    log.warning("run=%s could not close session: %s", report["run_id"], error)
