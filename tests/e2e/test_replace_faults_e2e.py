"""A replace whose batch 1 is in flight when its worker dies (SIGKILL), on the private stack."""

from __future__ import annotations

from e2e_helpers import maids


def test_a_worker_killed_sending_batch_1_does_not_stall_the_replace(private, tmp_path):
    """The chunk holding batch 1 is redelivered and sends it again (the same chunk, seq 1:
    its slot outlives the redelivery); the other chunks then go in parallel."""
    audience = private.new_audience()
    old = maids(300, seed=95)
    assert private.upload(tmp_path / "old.csv", old, audience).finish()[0] == 0
    private.configure_sandbox(latency_ms=1500)
    new = maids(4_000, seed=96)
    run = private.upload(tmp_path / "new.csv", new, audience, mode="replace")
    private.wait_meta(run.run_id, lambda m: "replace_first_sent_at" in m)
    # While batch 1 is on its way, three chunks' uploads exist in this stack (seen; the rest
    # are staged, not yet published): batch 1's and two waiting for it in their threads. All
    # held: none can be between the queue and the worker's record of it.
    held = private.kill_holding(private.workers("critical")[0], "audiencesync.upload", full=3)
    assert "replace_opened_at" not in private.store().meta(run.run_id)  # batch 1 unanswered
    private.configure_sandbox(latency_ms=0)
    private.start_worker("critical")
    private.wait_redelivered(held)
    code, report, err = run.finish()
    assert code == 0, err
    assert report["status"] == "completed" and report["session_closed"]
    assert private.members(audience) == set(new)
    assert report["replace"]["by_replace"] == len(new) and not report["replace"]["cutover"]
    calls = [c for c in private.calls(audience) if c["edge"] == "usersreplace"]
    firsts = [c for c in calls if c["batch_seq"] == 1]
    assert len(firsts) >= 1 and {c["entries"] for c in firsts} == {500}  # one chunk's batch
    later = [c for c in calls if c["batch_seq"] != 1]
    assert min(c["received_s"] for c in later) >= max(c["answered_s"] for c in firsts)
    assert sorted({c["batch_seq"] for c in later}) == list(range(2, 8 + 1 + 1))  # and the close
