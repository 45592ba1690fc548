"""Sync modes (pure): each chunk's operation, and how a report names what was done."""

from __future__ import annotations

import pytest

from audiencesync.cli.display import format_report
from audiencesync.domain.modes import MODES, chunk_op, is_sequential, unclosed_message
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


def test_a_failed_replace_reports_the_session_left_open_and_what_to_do():
    meta = {
        "mode": "replace",
        "audience_id": "1",
        "ids_read": "20",
        "started_at": "0",
        "aborted": "an earlier replace batch failed",
        "replace_failed": "chunk 1: (#100) refused",
    }
    results = [
        chunk_result(0, 10, entries=10, uploaded=10),
        chunk_result(1, 10, entries=10, failed="(#100) refused", ids_failed=10),
    ]
    report = build_report("r", RunMeta.parse(meta), results, 1.0)
    assert report["status"] == "failed" and not report["session_closed"]
    message = report["message"]
    assert "chunk 1: (#100) refused" in message and "left open" in message
    assert message.endswith("run the replace again")


def test_an_unclosed_session_is_worded_by_mode():
    assert "the upload session was not closed: x" in unclosed_message(
        RunMeta.parse({"mode": "add"}), "x"
    )
    assert "keeps its members" in unclosed_message(RunMeta.parse({"mode": "replace"}), "x")
