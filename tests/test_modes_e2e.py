"""Sync modes end to end: real workers, the sandbox over HTTP, its audience's final content."""

from __future__ import annotations

from e2e_helpers import maids
from test_failures_e2e import csv_source
from test_pipeline_e2e import run_upload


def test_remove_takes_a_subset_out_with_delete_calls_carrying_the_payload_in_the_body(
    stack, tmp_path
):
    audience = stack.new_audience()
    everyone = maids(3_000, seed=71)
    added = run_upload(stack, csv_source(tmp_path, everyone), audience, chunk_size=1_000)
    assert added["status"] == "completed", added
    leaving = everyone[::2]  # 1,500 IDs, spread over every added chunk
    report = run_upload(stack, csv_source(tmp_path, leaving), audience, "remove", chunk_size=500)
    assert report["status"] == "completed", report
    assert report["mode"] == "remove" and report["ids_uploaded"] == len(leaving)
    assert report["session_closed"]
    assert stack.members(audience) == set(everyone) - set(leaving)
    removals = [c for c in stack.calls(audience) if c["method"] == "DELETE"]
    assert len(removals) == report["requests"] == 3 + 1  # 3 chunks and the closing batch
    assert {c["edge"] for c in removals} == {"users"}
    assert all(c["url_params"] == [] for c in removals)  # payload and token in the body
    assert sum(c["entries"] for c in removals) == len(leaving) + 1  # the close re-sends one
    assert [c["last_batch_flag"] for c in removals].count(True) == 1


def test_a_removal_meta_refuses_fails_its_chunk_with_metas_message(stack, tmp_path):
    """Meta refuses a removal that would leave the audience under 100 people (error 100)."""
    audience = stack.new_audience()
    everyone = maids(150, seed=72)
    assert run_upload(stack, csv_source(tmp_path, everyone), audience)["status"] == "completed"
    report = run_upload(stack, csv_source(tmp_path, everyone[:100]), audience, "remove")
    assert report["status"] == "failed"
    assert report["chunks_failed"] == 1 and report["retries"] == 0
    reason = report["failed_chunks"][0]["reason"]
    assert "fewer than 100 people" in reason and "(#100)" in reason
    assert report["ids_failed"] == 100 and report["unaccounted"] == 0
    assert "run the removal again" in report["message"]
    assert not report["session_closed"]
    assert stack.members(audience) == set(everyone)
