"""finalize (chord body, queue `critical`): aggregate the report, close the session, store it."""

from __future__ import annotations

import logging
import time

from audiencesync.errors import GraphError, RetryableGraphError
from audiencesync.metrics import METRICS
from audiencesync.report import build_report
from tasks.prepare import build_payload
from workers.app import app
from workers.resources import get_graph, get_store

log = logging.getLogger("audiencesync.finalize")
CLOSE_ATTEMPTS = 3


@app.task(name="audiencesync.finalize")
def finalize(results: list[dict], run_id: str) -> dict:
    store = get_store()
    meta = store.meta(run_id)
    report = build_report(run_id, meta, results, finished_at=time.time())
    if report["ids_uploaded"] and not meta.get("aborted"):
        _close_session(run_id, meta, report, store.closer(run_id))
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
    for attempt in range(1, CLOSE_ATTEMPTS + 1):
        report["requests"] += 1
        report["retries"] += attempt > 1
        try:
            get_graph().upload(
                meta["audience_id"],
                build_payload([closer or ""]),
                session,
                mode=meta.get("mode", "add"),
            )
            report["session_closed"] = True
            return
        except RetryableGraphError as exc:
            error = exc
            time.sleep(min(2.0**attempt, 10.0))
        except GraphError as exc:
            if error is not None and "closed" in exc.message:
                # The earlier attempt was applied though its answer was lost: closed it is.
                report["session_closed"] = True
                return
            error = exc
            break
    report["session_close_error"] = str(error)
    if report["status"] == "completed":
        report["status"] = "completed_with_errors"
        report["message"] = f"all IDs sent but the upload session was not closed: {error}"
    log.warning("run=%s could not close session: %s", run_id, error)
