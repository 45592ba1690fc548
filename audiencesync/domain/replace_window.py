"""Where a replace run's next batch goes, given Meta's 90-minute session (pure).

Meta ends a replace session never closed 90 minutes after its first batch, replacing the
audience with the batches that arrived; later batches are refused (2650/1870158). So a run
that is still sending near the end of the window stops sending replace batches (the cutover),
closes its session with what Meta has, and sends the rest as /users adds: the audience ends as
the whole source either way, and the members outside it were removed by the replace.

The window is counted from batch 1's first send (Meta's clock starts no earlier); a batch may
still start as a replace while it can end, at the slowest call's pace so far, before
window * (100 - margin_pct) %. Meta's window is over for sure window_s after batch 1 was
accepted (its clock started no later): from then on the rest goes as adds even if the close
was never answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from audiencesync.store.meta import RunMeta


class Route(Enum):
    FIRST = "first"  # batch 1: sent alone, before any other
    REPLACE = "replace"  # a replace batch, in parallel with the others
    CUTOVER = "cutover"  # no time for another replace batch: close the session now
    WAIT_CLOSE = "wait_close"  # the cutover began; adds must wait for the close
    ADD = "add"  # the session is closed (or over): the rest goes by /users adds


@dataclass(frozen=True)
class Window:
    window_s: float = 5400.0
    margin_pct: float = 15.0

    @property
    def replace_until_s(self) -> float:
        """After batch 1's first send: the last moment a replace batch may end."""
        return self.window_s * (100.0 - self.margin_pct) / 100.0


@dataclass(frozen=True)
class SessionTimes:
    """What the run recorded of its replace session (run meta fields, see store/replace.py)."""

    first_sent_at: float | None = None
    opened_at: float | None = None
    cutover_at: float | None = None
    closed: bool = False
    call_s: float = 0.0  # the slowest replace call so far

    @classmethod
    def from_meta(cls, meta: RunMeta) -> SessionTimes:
        return cls(
            first_sent_at=meta.replace_first_sent_at,
            opened_at=meta.replace_opened_at,
            cutover_at=meta.replace_cutover_at,
            closed=meta.session_closed,
            call_s=meta.replace_call_s,
        )


def metas_window_over(times: SessionTimes, window: Window, now: float) -> bool:
    """True when Meta has ended the session for sure (it replaced the audience by itself)."""
    return times.opened_at is not None and now >= times.opened_at + window.window_s


def route(times: SessionTimes, window: Window, now: float) -> Route:
    if times.closed or metas_window_over(times, window, now):
        return Route.ADD
    if times.cutover_at is not None:
        return Route.WAIT_CLOSE
    if times.opened_at is None or times.first_sent_at is None:
        return Route.FIRST
    if now + times.call_s >= times.first_sent_at + window.replace_until_s:
        return Route.CUTOVER
    return Route.REPLACE
