"""A mirror run checks the audience at Meta before it sends: one replaced outside audiencesync is
refused with the command that repairs it (`--resync`: a replace with the whole source, whose
snapshot the next mirror run diffs against)."""

from __future__ import annotations

from e2e_helpers import maids
from test_mirror_e2e import mirror, report_of

from audiencesync.graph import GraphClient, build_payload
from audiencesync.settings import Settings


def _replace_outside(stack, audience: str, ids: list[str]) -> None:
    """Someone replaces the audience with a few people, with another tool."""
    client = GraphClient(Settings(graph_url=stack.graph_url, access_token=stack.token))
    try:
        session = {"session_id": 777, "batch_seq": 1, "last_batch_flag": True}
        client.upload(audience, build_payload(ids), session, mode="replace")
    finally:
        client.close()


def test_an_audience_replaced_outside_is_refused_then_resynced(stack, tmp_path):
    audience = stack.new_audience()
    first = maids(20_000, seed=91)
    assert report_of(mirror(stack, tmp_path, audience, first))["added"] == 20_000
    assert report_of(mirror(stack, tmp_path, audience, first))["unchanged"] == 20_000  # seen
    few = maids(150, seed=93)
    _replace_outside(stack, audience, few)
    assert stack.members(audience) == set(few)
    calls = len(stack.calls(audience))

    done = mirror(stack, tmp_path, audience, first)
    assert done.returncode == 1 and done.stdout == ""
    assert "emptied or replaced outside audiencesync" in done.stderr
    assert f"--mode mirror --resync --audience-id {audience}" in done.stderr
    assert len(stack.calls(audience)) == calls  # nothing sent

    report = report_of(mirror(stack, tmp_path, audience, first, "--resync"))
    assert report["mode"] == "replace" and report["status"] == "completed"
    assert stack.members(audience) == set(first)

    second = [*first[500:], *maids(300, seed=92)]  # the next mirror diffs against the resync
    report = report_of(mirror(stack, tmp_path, audience, second))
    assert (report["added"], report["removed"], report["unchanged"]) == (300, 500, 19_500)
    assert stack.members(audience) == set(second)
