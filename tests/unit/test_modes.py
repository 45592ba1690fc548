"""Sync modes (pure): each chunk's operation, and how a report names what was done."""

from __future__ import annotations

import pytest

from audiencesync.cli.display import format_report
from audiencesync.domain.modes import (
    MODES,
    chunk_op,
    is_sequential,
    too_big_to_replace,
    unclosed_message,
)
from audiencesync.domain.report import build_report, chunk_result
from audiencesync.graph.client import EDGE_BY_MODE
from audiencesync.store.meta import RunMeta


@pytest.mark.parametrize("mode", [m for m in MODES if m != "mirror"])  # mirror: two operations
def test_every_chunk_of_a_run_does_the_runs_mode_and_every_mode_has_an_edge(mode):
    meta = {"mode": mode}
    assert {chunk_op(RunMeta.parse(meta), n) for n in range(5)} == {mode}
    assert chunk_op(RunMeta.parse(meta), 0) in EDGE_BY_MODE
    assert is_sequential(RunMeta.parse(meta)) == (mode == "replace")


def test_a_run_recorded_before_modes_existed_adds():
    assert chunk_op(RunMeta.parse({}), 3) == "add"


def test_a_removal_report_says_removed():
    meta = {"mode": "remove", "audience_id": "1", "ids_read": "7", "started_at": "0"}
    report = build_report(
        "r", RunMeta.parse(meta), [chunk_result(0, 7, entries=7, uploaded=7)], 1.0
    )
    text = format_report(report)
    assert "(remove)" in text and "removed" in text and "uploaded" not in text


def test_a_failed_replace_says_meta_applies_what_arrived_when_its_window_ends():
    """Meta's guide: a session never closed ends 90 minutes after its first batch, and the
    audience is then replaced with what arrived (not left unchanged)."""
    meta = {
        "mode": "replace",
        "audience_id": "1",
        "ids_read": "20",
        "started_at": "0",
        "aborted": "an earlier replace batch failed",
        "replace_failed": "chunk 1: (#100) refused",
        "replace_opened_at": "3600",
    }
    results = [
        chunk_result(0, 10, entries=10, uploaded=10, sent_as="replace"),
        chunk_result(1, 10, entries=10, failed="(#100) refused", ids_failed=10),
    ]
    report = build_report("r", RunMeta.parse(meta), results, 1.0)
    assert report["status"] == "failed" and not report["session_closed"]
    message = report["message"]
    assert "chunk 1: (#100) refused" in message and "left open" not in message
    assert "90 minutes after its first batch (batch 1 was accepted at 01:00:00 UTC)" in message
    assert "replaces the audience with the 10 IDs it received" in message
    assert "run the replace again once that session has ended" in message
    assert report["replace"]["by_replace"] == 10 and not report["replace"]["cutover"]


def test_a_replace_meta_accepted_nothing_of_leaves_the_audience_unchanged():
    meta = {"mode": "replace", "audience_id": "1", "ids_read": "10", "started_at": "0"}
    meta |= {"aborted": "x", "replace_failed": "chunk 0: (#100) refused"}
    results = [chunk_result(0, 10, entries=10, failed="(#100) refused", ids_failed=10)]
    message = build_report("r", RunMeta.parse(meta), results, 1.0)["message"]
    assert "Meta accepted no batch, so the audience is unchanged" in message


def test_an_unclosed_session_is_worded_by_mode():
    add = unclosed_message(RunMeta.parse({"mode": "add"}), "x", 5)
    assert "the upload session was not closed: x" in add
    replace = unclosed_message(RunMeta.parse({"mode": "replace"}), "x", 5_000)
    assert "refused the replace session's close (x)" in replace
    assert "all 5,000 IDs sent, so it will hold the whole source then" in replace


def test_an_audience_of_100m_or_more_is_too_big_to_replace_and_an_unknown_size_is_not():
    assert too_big_to_replace({"approximate_count_lower_bound": 99_999_999}) is None
    message = too_big_to_replace({"approximate_count_lower_bound": 100_000_000})
    assert message and "100,000,000 people" in message and "--mode mirror" in message
    assert too_big_to_replace(None) is None  # no answer: Meta's refusal of batch 1 decides
    assert too_big_to_replace({"approximate_count_lower_bound": -1}) is None
