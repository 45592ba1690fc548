"""finalize (chord body, queue `critical`): aggregate the report, close the session, store it.

The report is built from the run's ledger, not from the chord's results: a header task delivered
twice may be counted twice by the chord and fire this body early, and a resumed run's chord only
holds the chunks it re-drove. Until the ledger holds an outcome for every staged chunk, finalize
re-enqueues itself (bounded), then reports what is missing as unaccounted.
"""

from __future__ import annotations

import logging
import time

from audiencesync.domain.modes import MIRROR
from audiencesync.domain.report import build_report, finish_timing
from audiencesync.errors import GraphError
from audiencesync.graph.destination import refusal
from audiencesync.metrics import METRICS
from audiencesync.mirror.plan import lock_name
from audiencesync.recovery.leases import FINALIZE
from audiencesync.settings import get_settings
from audiencesync.store.meta import RunMeta
from audiencesync.throttle.summary import throttle_section
from tasks.closing import close_or_retry, may_close, open_sessions, record_close
from workers.app import app
from workers.leased import LeasedTask
from workers.resources import get_guard, get_store

log = logging.getLogger("audiencesync.finalize")
POLL_S = 2.0  # between looks at an incomplete ledger; far below any visibility timeout


def missing_chunks(meta: RunMeta, outcomes: list[dict]) -> int | None:
    """Staged chunks without an outcome; None while the producer may still stage more."""
    if not meta.producer_done:
        return None
    return meta.chunks_staged - len(outcomes)


class FinalizeTask(LeasedTask):
    """Holds the run's lease while it runs (a duplicate waits for its live holder): a worker
    that dies meanwhile lets it run out, and a reaper hands this message back (tasks/reaper.py)."""

    run_arg, fixed_chunk, finishes_chunk, waits_for_holder = 1, FINALIZE, True, True

    def lease_done(self, args) -> bool:  # not by an attempt that stood down for a newer one
        return get_store().report(args[self.run_arg]) is not None


@app.task(bind=True, name="audiencesync.finalize", max_retries=None, base=FinalizeTask)
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
    meta = store.run(run_id)
    if meta is None or meta.attempt != attempt:
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
    if to_close and not meta.aborted and may_close(meta, report):
        refused = refusal(meta.destination, settings)  # this worker points elsewhere
        error = (
            GraphError(f"not sent: {refused}")
            if refused
            else close_or_retry(self, guard, store, run_id, meta, to_close, kwargs)
        )
        report["requests"] += kwargs["close_sent"]
        report["retries"] += max(kwargs["close_calls"] - 1, 0)
        record_close(report, error, meta)
        finish_timing(report, meta, time.time())
    try:  # throttle figures and metrics are extras: the report is saved whatever they do
        report["throttle"] = throttle_section(
            guard.account, meta, outcomes, report, guard.gate.snapshot(guard.account)
        )
        METRICS.record_run(meta.audience_name or meta.audience_id, report, outcomes)
    except Exception:
        log.exception("run=%s throttle figures or metrics failed; the report is saved", run_id)
    store.save_report(run_id, report)
    if meta.audience_name:  # a scheduled run: the audience may run again
        store.release_audience_lock(meta.audience_name, run_id)
    if meta.mode == MIRROR:
        store.release_audience_lock(lock_name(meta.audience_id), run_id)
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
