"""The replace window plan (pure): where a replace run's next batch goes, and the pace."""

from __future__ import annotations

import pytest

from audiencesync.domain.replace_window import (
    Route,
    SessionTimes,
    Window,
    metas_window_over,
    route,
)
from audiencesync.store.meta import RunMeta

W = Window()  # the defaults: Meta's 90 minutes, a 15 % margin
OPEN = SessionTimes(first_sent_at=1000.0, opened_at=1002.0, call_s=2.0)


def test_the_defaults_are_metas_90_minutes_less_a_margin():
    assert W.window_s == 5400 and W.replace_until_s == pytest.approx(5400 * 0.85)


def test_batch_1_goes_first_until_meta_accepted_it():
    assert route(SessionTimes(), W, 0.0) is Route.FIRST
    sent_not_accepted = SessionTimes(first_sent_at=1000.0)
    assert route(sent_not_accepted, W, 1001.0) is Route.FIRST  # others wait for its answer


def test_once_open_batches_replace_while_one_more_call_ends_before_the_margin():
    last_start = 1000.0 + W.replace_until_s - OPEN.call_s
    assert route(OPEN, W, 1003.0) is Route.REPLACE
    assert route(OPEN, W, last_start - 0.01) is Route.REPLACE
    assert route(OPEN, W, last_start) is Route.CUTOVER


def test_a_slower_pace_cuts_over_sooner():
    slow = SessionTimes(first_sent_at=1000.0, opened_at=1002.0, call_s=60.0)
    now = 1000.0 + W.replace_until_s - 30.0
    assert route(OPEN, W, now) is Route.REPLACE and route(slow, W, now) is Route.CUTOVER


def test_after_the_cutover_adds_wait_for_the_close_or_for_metas_window_to_be_over():
    cut = SessionTimes(first_sent_at=1000.0, opened_at=1002.0, cutover_at=5000.0, call_s=2.0)
    assert route(cut, W, 5001.0) is Route.WAIT_CLOSE
    closed = SessionTimes(first_sent_at=1000.0, opened_at=1002.0, cutover_at=5000.0, closed=True)
    assert route(closed, W, 5001.0) is Route.ADD
    # Meta's clock started at the latest when batch 1 was accepted: 90 minutes on, it is over.
    assert not metas_window_over(cut, W, 1002.0 + 5400 - 0.01)
    assert metas_window_over(cut, W, 1002.0 + 5400)
    assert route(cut, W, 1002.0 + 5400) is Route.ADD


def test_the_times_come_from_the_run_meta():
    meta = {
        "replace_first_sent_at": "10.5",
        "replace_opened_at": "12",
        "replace_call_s": "1.25",
        "session_closed": "1",
    }
    times = SessionTimes.from_meta(RunMeta.parse(meta))
    assert times == SessionTimes(first_sent_at=10.5, opened_at=12.0, closed=True, call_s=1.25)
    assert SessionTimes.from_meta(RunMeta.parse({})) == SessionTimes()
