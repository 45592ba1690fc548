"""A replace run's report section and its message after a cutover (pure)."""

from __future__ import annotations

from audiencesync.domain.replace_report import apply_replace, cutover_message, replace_section
from audiencesync.domain.report import build_report, chunk_result
from audiencesync.store.meta import RunMeta

META = {"mode": "replace", "audience_id": "1", "ids_read": "30", "started_at": "0"}
RESULTS = [
    chunk_result(0, 10, entries=10, uploaded=10, sent_as="replace"),
    chunk_result(1, 10, entries=10, uploaded=10, sent_as="replace"),
    chunk_result(2, 10, entries=10, uploaded=10, sent_as="add"),
]


def test_a_replace_that_ended_in_time_went_all_by_replace():
    report = build_report("r", RunMeta.parse(META | {"ids_read": "20"}), RESULTS[:2], 1.0)
    section = report["replace"]
    assert (section["by_replace"], section["by_add"], section["cutover"]) == (20, 0, False)
    assert report["status"] == "completed" and report["message"] == ""


def test_a_cutover_says_how_many_went_each_way_and_what_the_audience_went_through():
    meta = META | {
        "replace_cutover_at": "7200",
        "replace_closed_at": "7201",
        "replace_call_s": "1.5",
    }
    report = build_report("r", RunMeta.parse(meta), RESULTS, 1.0)
    section = report["replace"]
    assert (section["by_replace"], section["by_add"]) == (20, 10)
    assert section["closed_at"] == "1970-01-01T02:00:01+00:00" and section["slowest_call_s"] == 1.5
    assert report["status"] == "completed"
    message = report["message"]
    assert "could not end within Meta's 90-minute session" in message
    assert "closed at 1970-01-01T02:00:01+00:00 with the 20 IDs Meta had" in message
    assert (
        "the other 10 IDs were then added with /users (no removal): the audience holds all 30"
        in message
    )


def test_meta_ending_the_session_itself_is_said_so():
    timed_out = RunMeta.parse(META | {"replace_cutover_at": "1", "replace_timed_out": "1"})
    section = replace_section(timed_out, RESULTS)
    assert section["timed_out"]
    assert cutover_message(section).startswith("Meta ended the replace session 90 minutes after")
    refused_meta = RunMeta.parse(META | {"replace_cutover_at": "1", "replace_close_error": "e"})
    refused = replace_section(refused_meta, RESULTS)
    assert "close was refused (e), so Meta ended it" in cutover_message(refused)


def test_a_cutover_note_follows_a_failure_message():
    report = {"message": "1 chunk(s) failed"}
    apply_replace(report, RunMeta.parse(META | {"replace_cutover_at": "1"}), RESULTS)
    assert (
        report["message"].startswith("1 chunk(s) failed; ")
        and "added with /users" in report["message"]
    )
