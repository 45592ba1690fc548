"""Closing a run's upload sessions: finalize's last calls (not a task).

Meta applies a session's batches when a last batch (last_batch_flag=true) closes it. Each open
session that took a batch is closed with a batch that re-sends one entry already sent (harmless:
an audience is a set, and no empty batch needs to be accepted); a replace session only when it
is whole. The close goes through the throttle gate like any upload (tasks/sending.py).
"""

from __future__ import annotations

import logging
import time

from audiencesync.domain.modes import (
    Session,
    chunk_session,
    is_closed,
    is_sequential,
    sessions,
    unclosed_message,
)
from audiencesync.errors import Deferred, GraphError, RetryableGraphError
from audiencesync.graph import build_payload
from audiencesync.store.meta import RunMeta
from audiencesync.store.replace import CLOSE
from tasks import sending
from tasks.replacing import TIMED_OUT, session_over
from workers.resources import get_graph, get_turns

log = logging.getLogger("audiencesync.finalize")
CLOSE_DEFERRALS = 50  # turns waited at the throttle gate before the close is given up


def close_or_retry(
    task, guard, store, run_id: str, meta: RunMeta, to_close: list[Session], kwargs: dict
) -> GraphError | None:
    """Close the sessions, re-enqueueing finalize (deferred, or after the backoff) while the
    gate or the retry policy says so; returns the error that stopped the close, if any. Its
    calls are counted in kwargs (close_calls, close_sent, deferrals), which its retry carries."""
    retry = {"args": ([], run_id), "kwargs": kwargs}
    try:
        # A close sent by an earlier delivery (its worker died before it recorded the answer)
        # may have landed, like one whose answer an error lost.
        after_close = kwargs["close_calls"] > 0 or meta.close_tried
        error, sent = close_sessions(guard, store, run_id, meta, to_close, after_close)
    except Deferred as wait:  # the close is an upload call too: it waits for its turn
        if kwargs["deferrals"] < CLOSE_DEFERRALS:
            sending.defer(task, wait.wait_s, kwargs, retry)
        return GraphError(f"the ad account stayed throttled ({wait})")
    kwargs["close_calls"] += 1
    kwargs["close_sent"] += sent
    if error is not None:
        sending.retry_if_allowed(
            task,
            error,
            kwargs,
            attempt=kwargs["close_calls"],
            elapsed_s=time.time() - kwargs["first_at"],
            retry=retry,
            what=(log, f"run={run_id} closing the session again"),
        )
    return error


def open_sessions(meta: RunMeta, outcomes: list[dict]) -> list[Session]:
    """Sessions that took a batch and are not closed yet (by an earlier delivery of finalize)."""
    sent = {c["chunk"] for c in outcomes if c["uploaded"]}
    return [
        s
        for s in sessions(meta)
        if not is_closed(meta, s) and any(chunk_session(meta, chunk)[0] == s for chunk in sent)
    ]


def may_close(meta: RunMeta, report: dict) -> bool:
    """Closing a replace session drops every member it lacks: only a whole one is closed."""
    return not is_sequential(meta) or not (report["chunks_failed"] or report["unaccounted"])


def closing_seq(run_id: str, meta: RunMeta, session: Session) -> int:
    """After every batch of the session: a replace run's next seq from its counter (remembered
    across retries of this task), since chunks without entries sent no batch; otherwise after
    the session's last chunk (a mirror run's additions end where its removals start)."""
    if is_sequential(meta):
        return get_turns().seq(run_id, CLOSE)
    ends = [s.first_chunk for s in sessions(meta) if s.first_chunk > session.first_chunk]
    end = ends[0] if ends else meta.chunks_staged
    return end - session.first_chunk + 1


def close_sessions(
    guard, store, run_id: str, meta: RunMeta, to_close: list[Session], after_close: bool
) -> tuple[GraphError | None, int]:
    """Close each session with a last batch that re-sends one entry already sent.

    Meta needs a final batch with last_batch_flag=true; re-adding (or re-removing) an ID is
    harmless (a set), and it avoids relying on an empty batch being accepted. Retried like an
    upload (by the caller); a session closed here is recorded at once, so it is closed once.
    Returns the error that stopped it, if any, and the calls it made.
    """
    for sent, session in enumerate(to_close, start=1):
        batch_seq = closing_seq(run_id, meta, session)
        batch = {"session_id": session.session_id, "batch_seq": batch_seq}
        closer = store.closer(run_id, session.op)
        try:
            store.update(run_id, close_tried=1)
            send_close(guard, meta.audience_id, session.op, batch, closer)
        except RetryableGraphError as exc:
            return exc, sent
        except GraphError as exc:
            if session.op == "replace" and session_over(exc):
                # Meta ended it (its window) with every batch: all had an answer by now
                if exc.subcode == TIMED_OUT:
                    store.update(run_id, replace_timed_out=1)
            elif not (after_close and "closed" in exc.message):
                return exc, sent  # else an earlier close was applied though its answer was lost
        store.update(run_id, **{session.closed_field: 1})
    return None, len(to_close)


def send_close(guard, audience_id: str, op: str, batch: dict, closer: str | None) -> None:
    sending.send(  # raises Deferred when the account must wait
        guard,
        lambda: get_graph().upload(
            audience_id,
            build_payload([closer or ""]),
            batch | {"last_batch_flag": True},
            mode=op,
        ),
        close=True,
    )


def record_close(report: dict, error: GraphError | None, meta: RunMeta) -> None:
    if error is None:
        report["session_closed"] = True
        return
    report["session_close_error"] = str(error)
    if report["status"] == "completed":
        report["status"] = "completed_with_errors"
        report["message"] = unclosed_message(meta, str(error), report["ids_uploaded"])
    log.warning("run=%s could not close session: %s", report["run_id"], error)
