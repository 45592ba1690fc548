"""finalize (chord body, queue `critical`): aggregate the report, close the session, store it."""

from __future__ import annotations

import logging
import random
import time

from audiencesync.errors import Deferred, GraphError, RetryableGraphError, ThrottledError
from audiencesync.metrics import METRICS
from audiencesync.report import build_report
from audiencesync.throttle.summary import throttle_section
from tasks.prepare import build_payload
from tasks.upload import retry_policy
from workers.app import app
from workers.resources import get_graph, get_guard, get_store

log = logging.getLogger("audiencesync.finalize")
CLOSE_ATTEMPTS = 3
CLOSE_DEFERRALS = 50  # turns waited at the throttle gate before the close is given up
_rng = random.Random()


@app.task(bind=True, name="audiencesync.finalize", max_retries=None)
def finalize(self, results: list[dict], run_id: str) -> dict:
    store = get_store()
    meta = store.meta(run_id)
    report = build_report(run_id, meta, results, finished_at=time.time())
    if report["ids_uploaded"] and not meta.get("aborted"):
        try:
            _close_session(run_id, meta, report, store.closer(run_id))
        except Deferred as wait:  # the close is an upload call too: it waits for its turn
            if self.request.retries < CLOSE_DEFERRALS:
                raise self.retry(countdown=retry_policy().defer_s(wait.wait_s, rng=_rng)) from None
            _not_closed(run_id, report, f"the ad account stayed throttled ({wait})")
    guard = get_guard(run_id, meta)
    report["throttle"] = throttle_section(
        guard.account, meta, results, report, guard.gate.snapshot(guard.account)
    )
    METRICS.record_run(meta.get("audience_name") or meta["audience_id"], report, results)
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


def _close_session(run_id: str, meta: dict[str, str], report: dict, closer: str | None) -> None:
    """Close the run's upload session with a last batch that re-sends one entry already sent.

    Meta needs a final batch with last_batch_flag=true; re-adding an ID is harmless (a set), and
    it avoids relying on an empty batch being accepted.
    """
    session = {
        "session_id": int(meta["session_id"]),
        "batch_seq": report["chunks"] + 1,
        "last_batch_flag": True,
    }
    error: GraphError | None = None
    guard = get_guard(run_id, meta)
    for attempt in range(1, CLOSE_ATTEMPTS + 1):
        lease = guard.enter()
        report["requests"] += 1
        report["retries"] += attempt > 1
        try:
            guard.send(
                lease,
                lambda: get_graph().upload(
                    meta["audience_id"],
                    build_payload([closer or ""]),
                    session,
                    mode=meta.get("mode", "add"),
                ),
                sample_latency=False,  # one entry: its latency says nothing about load
            )
            report["session_closed"] = True
            return
        except RetryableGraphError as exc:
            error = exc
            if not isinstance(exc, ThrottledError):  # a throttled one waits at the gate
                time.sleep(min(2.0**attempt, 10.0))
        except GraphError as exc:
            if error is not None and "closed" in exc.message:
                # The earlier attempt was applied though its answer was lost: closed it is.
                report["session_closed"] = True
                return
            error = exc
            break
    _not_closed(run_id, report, str(error))


def _not_closed(run_id: str, report: dict, error: str) -> None:
    report["session_close_error"] = error
    if report["status"] == "completed":
        report["status"] = "completed_with_errors"
        report["message"] = f"all IDs sent but the upload session was not closed: {error}"
    log.warning("run=%s could not close session: %s", run_id, error)
