"""A replace chunk's way through its run's session: batch 1 alone, the rest in parallel, the
cutover near the end of Meta's window (the decisions are domain/replace_window.py's; this does
the I/O, for upload). Not a task.

`next_batch` says how a chunk goes now: a replace batch (its batch_seq assigned once, so a retry
re-sends it), an add once the session is closed or over, or come back later (Deferred) while a
cutover's close is on its way, or batch 1 still is after a wait in the thread. At a cutover the
chunk that gets there first closes the session with what Meta has (`close_now`) and sends its
own IDs as an add.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from audiencesync.domain.modes import MAX_REPLACE, TOO_BIG_HINT
from audiencesync.domain.replace_window import Route, SessionTimes, Window, route
from audiencesync.errors import Deferred, GraphError, PermanentGraphError, RetryableGraphError
from audiencesync.settings import Settings, get_settings
from audiencesync.store.meta import RunMeta
from audiencesync.store.replace import CLOSE, FIRST, WAIT, ReplaceTurns
from workers.resources import get_turns

log = logging.getLogger("audiencesync.replace")
Closer = Callable[[dict], None]  # sends the closing batch's session fields through the gate
WAIT_S = 0.25  # a chunk waiting for batch 1 or for the cutover's close looks again after this
# A chunk waits for batch 1's acceptance in its thread (blocked on Redis, no polling) this long,
# a Meta round trip or two: all go the moment it is accepted, with no message re-enqueued every
# WAIT_S. Longer (batch 1 is retried): deferred, which frees the thread for other runs' chunks.
FIRST_WAIT_S = 3.0
# 2650 subcodes (graph-api-facts.md, "Sessions")
IN_PROGRESS, TOO_BIG, TIMED_OUT, FINISHED = 1870145, 1870144, 1870158, 1870159


@dataclass(frozen=True)
class Batch:
    op: str  # "replace" or "add"
    session: dict | None  # None: an add after the session, sent without one
    first: bool = False  # batch 1: its acceptance opens the session


def window_of(settings: Settings) -> Window:
    return Window(settings.replace_window_s, settings.replace_margin_pct)


def session_over(exc: GraphError) -> bool:
    """Meta refused a replace batch because the session ended (closed, or its window expired):
    the batch's IDs are not in the replaced audience, and go as an add."""
    return exc.code == 2650 and exc.subcode in (TIMED_OUT, FINISHED)


def refusal_message(exc: GraphError) -> str | None:
    """What to do about a replace Meta refuses outright (batch 1), or None."""
    if exc.code != 2650:
        return None
    if exc.subcode == IN_PROGRESS:
        return (
            f"Meta refused the replace: another replace of this audience is in progress ({exc}); "
            "wait until it ends (at most 90 minutes after its first batch), then run it again"
        )
    if exc.subcode == FINISHED:
        return (
            f"Meta refused the replace: its session was already finished ({exc}); run the "
            "replace again (a new run opens a new session)"
        )
    if exc.subcode == TOO_BIG:  # the upload's preflight found no count, or a scheduled run
        return (
            f"Meta refused the replace: it cannot replace an audience of {MAX_REPLACE:,} people "
            f"or more ({exc}); the audience is unchanged: {TOO_BIG_HINT}"
        )
    return None


def get_replace() -> ReplaceSession:
    """A replace run's session steps, over the worker's ReplaceTurns."""
    return ReplaceSession(get_turns(), get_settings())


class ReplaceSession:
    def __init__(self, turns: ReplaceTurns, settings: Settings) -> None:
        self.turns = turns
        self.window = window_of(settings)

    def next_batch(
        self, run_id: str, chunk: int, meta: RunMeta, session: dict, close: Closer
    ) -> Batch:
        """How chunk `chunk` goes now; raises Deferred while it must wait (a deferral)."""
        now = time.time()
        times = SessionTimes.from_meta(meta)
        step = route(times, self.window, now)
        if step is Route.FIRST:
            taken = self.turns.first(run_id, chunk)
            if taken == WAIT and not self.turns.wait_open(run_id, FIRST_WAIT_S):
                raise Deferred(WAIT_S, "batch 1 of the replace goes first, alone")
            if taken == FIRST:
                return Batch("replace", session | {"batch_seq": 1}, first=True)
            step = Route.REPLACE  # batch 1 was accepted since the meta was read
        if step is Route.REPLACE:
            return Batch("replace", session | {"batch_seq": self.turns.seq(run_id, chunk)})
        if step is Route.CUTOVER and self.turns.mark(run_id, "replace_cutover_at", now):
            log.warning("run=%s no time left in Meta's window: the rest goes by add", run_id)
        if step is not Route.ADD:  # the cutover: the session is closed before any add
            if meta.replace_close_error or not self.close_now(run_id, chunk, close):
                # Meta ends the session by itself: an add before then would be replaced away
                ends_in_s = (times.opened_at or now) + self.window.window_s - now
                raise Deferred(min(max(ends_in_s, WAIT_S), 30.0), "Meta's window is not over")
        elif not times.closed:  # Meta's window ended before any close: it replaced by itself
            self.ended_by_meta(run_id, TIMED_OUT)
        return Batch("add", None)

    def first_sending(self, run_id: str) -> None:
        """Batch 1 is about to go: Meta's window starts no earlier than now."""
        self.turns.mark(run_id, "replace_first_sent_at", time.time())

    def accepted(self, run_id: str, batch: Batch, call_s: float) -> None:
        """A replace batch was accepted: batch 1 opens the session; every call paces it."""
        if batch.first and self.turns.mark(run_id, "replace_opened_at", time.time()):
            self.turns.open(run_id)
        self.turns.note_call_s(run_id, call_s)

    def ended_by_meta(self, run_id: str, subcode: int | None) -> None:
        """Meta ended the session (or says so): no replace batch goes any more."""
        self.turns.mark(run_id, "replace_cutover_at", time.time())
        self.turns.mark(run_id, "session_closed", 1)
        if subcode == TIMED_OUT:
            self.turns.mark(run_id, "replace_timed_out", 1)

    def close_now(self, run_id: str, chunk: int, send: Closer) -> bool:
        """Close the session at a cutover, once, whoever gets here; `send(batch)` sends the
        closing batch through the gate. Raises Deferred while another chunk closes it or the
        close must be tried again; False when Meta refused it for good: the session ends by
        itself (adds then wait for Meta's window to be over)."""
        if not self.turns.take_close(run_id, chunk):
            raise Deferred(WAIT_S, "another chunk is closing the replace session")
        batch = {"batch_seq": self.turns.seq(run_id, CLOSE), "last_batch_flag": True}
        try:
            send(batch)
        except RetryableGraphError as exc:
            raise Deferred(WAIT_S * 4, f"closing the replace session again: {exc}") from None
        except PermanentGraphError as exc:
            if not session_over(exc):
                log.warning("run=%s the replace session's close was refused: %s", run_id, exc)
                self.turns.mark(run_id, "replace_close_error", str(exc))
                return False
            self.ended_by_meta(run_id, exc.subcode)  # timed out, or an earlier close applied
        self.turns.mark(run_id, "replace_closed_at", time.time())
        self.turns.mark(run_id, "session_closed", 1)
        return True
