"""Sync modes end to end: real workers, the sandbox over HTTP, its audience's final content."""

from __future__ import annotations

import itertools

import orjson
import redis
from e2e_helpers import cli, csv_source, maids, run_upload, write_csv

from audiencesync.graph import GraphClient, build_payload
from audiencesync.settings import Settings
from audiencesync.store.runs import RunStore
from producers.pipeline import RunRequest, create_run


def audience_of(stack, tmp_path, n: int, seed: int, **settings_kw) -> tuple[str, list[str]]:
    """A new audience holding n generated members, added by an ordinary run."""
    audience, members = stack.new_audience(), maids(n, seed)
    report = run_upload(stack, csv_source(tmp_path, members), audience, **settings_kw)
    assert report["status"] == "completed", report
    return audience, members


def test_remove_takes_a_subset_out_with_delete_calls_carrying_the_payload_in_the_body(
    stack, tmp_path
):
    audience, everyone = audience_of(stack, tmp_path, 3_000, seed=71, chunk_size=1_000)
    leaving = everyone[::2]  # 1,500 IDs, spread over every added chunk
    write_csv(tmp_path / "leaving.csv", leaving)
    env = {**stack.env, "AUDIENCESYNC_CHUNK_SIZE": "500"}
    args = ("upload", str(tmp_path / "leaving.csv"), "--audience-id", audience, "--wait")
    done = cli(env, *args, "--column", "maid", "--mode", "remove")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.splitlines()[0]
    lines = [line.split() for line in done.stdout.splitlines()]
    assert "(remove)," in lines[2] and ["removed", f"{len(leaving):,}"] in lines
    report = orjson.loads(cli(stack.env, "status", run_id, "--json").stdout)
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
    audience, everyone = audience_of(stack, tmp_path, 150, seed=72)
    report = run_upload(stack, csv_source(tmp_path, everyone[:100]), audience, "remove")
    assert report["status"] == "failed"
    assert report["chunks_failed"] == 1 and report["retries"] == 0
    reason = report["failed_chunks"][0]["reason"]
    assert "fewer than 100 people" in reason and "(#100)" in reason
    assert report["ids_failed"] == 100 and report["unaccounted"] == 0
    assert "run the removal again" in report["message"]
    assert not report["session_closed"]
    assert stack.members(audience) == set(everyone)


def replace_calls(stack, audience: str) -> list[dict]:
    calls = [c for c in stack.calls(audience) if c["edge"] == "usersreplace"]
    return sorted(calls, key=lambda c: c["received_s"])


def overlapping(calls: list[dict]) -> int:
    """The most calls in flight at once, from their received/answered times."""
    edges = sorted([(c["received_s"], 1) for c in calls] + [(c["answered_s"], -1) for c in calls])
    return max(itertools.accumulate(step for _, step in edges))


def test_replace_sends_batch_1_alone_then_the_rest_in_parallel_and_closes_last(
    stack, sandbox_knobs, tmp_path
):
    sandbox_knobs(latency_ms=100, jitter_ms=50)  # calls that overlap show it
    audience, old = audience_of(stack, tmp_path, 600, seed=73)  # the gate learns this latency
    new = old[:200] + maids(9_800, seed=74)
    rows = new[:1_000] + ["not-an-id"] * 250 + new[1_000:]  # chunk 4 sends no batch at all
    report = run_upload(stack, csv_source(tmp_path, rows), audience, "replace", chunk_size=250)
    assert report["status"] == "completed", report
    assert report["mode"] == "replace" and report["session_closed"]
    assert report["ids_uploaded"] == len(new) and report["chunks"] == 41
    assert report["replace"]["by_replace"] == len(new) and report["replace"]["by_add"] == 0
    assert not report["replace"]["cutover"] and "added with /users" not in report["message"]
    assert stack.members(audience) == set(new)
    calls = replace_calls(stack, audience)
    assert all(c["status"] == 200 for c in calls) and len({c["session_id"] for c in calls}) == 1
    first, *middle, close = calls
    assert first["batch_seq"] == 1 and not first["last_batch_flag"]
    assert all(first["answered_s"] <= c["received_s"] for c in [*middle, close])  # alone
    assert sorted(c["batch_seq"] for c in middle) == list(range(2, 40 + 1))
    assert close["last_batch_flag"] and close["batch_seq"] == 41
    assert all(c["answered_s"] <= close["received_s"] for c in middle)  # after every outcome
    assert overlapping(middle) > 1  # the rest went in parallel, through the gate
    assert report["retries"] == 0


def test_a_replace_batch_failing_for_good_stops_the_replace_and_says_what_meta_does_next(
    stack, sandbox_knobs, tmp_path
):
    audience, old = audience_of(stack, tmp_path, 300, seed=75)
    sandbox_knobs(fail_batch_seq=2)
    new = maids(2_000, seed=76)
    report = run_upload(stack, csv_source(tmp_path, new), audience, "replace", chunk_size=500)
    assert report["status"] == "failed" and not report["session_closed"]
    message = report["message"]
    assert "fail_batch_seq" in message  # Meta's reason for the batch it refused
    # Meta's guide: a session never closed ends after 90 minutes with what arrived.
    assert "90 minutes after its first batch" in message and "run the replace again" in message
    assert f"with the {report['ids_uploaded']:,} IDs it received" in message
    calls = replace_calls(stack, audience)
    assert (calls[0]["batch_seq"], calls[0]["status"]) == (1, 200)
    assert [c["status"] for c in calls if c["batch_seq"] == 2] == [400]  # no retry
    assert not any(c["last_batch_flag"] for c in calls)
    assert stack.members(audience) == set(old)  # until Meta's window ends
    # Every ID is accounted for: the batches accepted, the rest failed or never sent.
    accepted = sum(c["entries"] for c in calls if c["status"] == 200)
    assert report["ids_uploaded"] == accepted and report["unaccounted"] == 0
    assert report["ids_failed"] == report["ids_read"] - accepted
    reasons = report["failure_reasons"]
    assert sum(reasons.values()) == report["chunks"] - len([c for c in calls if c["status"] == 200])
    done = cli(stack.env, "resume", report["run_id"])
    assert done.returncode == 1 and "cannot be resumed" in done.stderr


def test_replace_retries_re_send_the_same_batch_and_the_result_is_exact(
    stack, sandbox_knobs, tmp_path
):
    """Transient errors, half of them after the batch was applied: a retry re-sends its
    batch_seq (never a new one), which the session accepts in any order."""
    audience, _ = audience_of(stack, tmp_path, 400, seed=77)
    # 12 batches and a close at 40 %: no error at all once in 800 runs, a chunk giving up
    # (12 errors in a row) far more rarely.
    sandbox_knobs(transient_rate=0.4)
    new = maids(3_000, seed=78)
    report = run_upload(stack, csv_source(tmp_path, new), audience, "replace", chunk_size=250)
    assert report["status"] == "completed", (report["message"], report["failure_reasons"])
    assert stack.members(audience) == set(new)
    calls = replace_calls(stack, audience)
    assert report["retries"] > 0 and report["requests"] == len(calls)
    # Each batch_seq carried one chunk's IDs, however often it was sent: 12 seqs, the close.
    assert {c["batch_seq"] for c in calls} == set(range(1, 12 + 1 + 1))
    for seq in range(1, 12 + 1):
        assert {c["entries"] for c in calls if c["batch_seq"] == seq} == {250}
    assert {c["batch_seq"] for c in calls if c["last_batch_flag"]} == {13}


def test_a_replace_of_an_audience_meta_cannot_replace_stops_at_metas_answer_to_batch_1(
    stack, tmp_path
):
    audience = stack.new_audience()
    stack.resize_audience(audience, 10**8)
    report = run_upload(stack, csv_source(tmp_path, maids(1_000, 81)), audience, "replace")
    assert report["status"] == "failed" and report["ids_uploaded"] == 0
    message = report["message"]
    assert "100,000,000 people or more" in message and "1870144" in message
    assert "unchanged" in message and "--mode mirror" in message
    # Meta's answer to batch 1 stops the run: no other batch goes, the audience is untouched
    assert [(c["batch_seq"], c["status"]) for c in replace_calls(stack, audience)] == [(1, 400)]
    assert stack.members(audience) == set()
    assert report["unaccounted"] == 0 and report["ids_failed"] == 1_000


def test_the_upload_command_refuses_to_replace_an_audience_too_big_before_any_call(stack, tmp_path):
    """The upload's preflight read of the audience gives its size: no run, nothing sent."""
    audience = stack.new_audience()
    stack.resize_audience(audience, 10**8)
    write_csv(tmp_path / "ids.csv", maids(500, 85))
    args = ("upload", str(tmp_path / "ids.csv"), "--audience-id", audience, "--wait")
    for mode in (("--mode", "replace"), ("--mode", "mirror", "--resync")):
        done = cli(stack.env | {"AUDIENCESYNC_STATE_DIR": str(tmp_path / "state")}, *args, *mode)
        assert done.returncode == 1 and not done.stdout.strip()  # no run id: no run
        assert "100,000,000 people or more" in done.stderr and "nothing was sent" in done.stderr
    assert replace_calls(stack, audience) == []


def test_a_replace_while_another_is_in_progress_says_to_wait_for_it(stack, tmp_path):
    audience, _ = audience_of(stack, tmp_path, 200, seed=82)
    settings = Settings(graph_url=stack.graph_url, access_token=stack.token)
    client = GraphClient(settings)
    try:  # someone else's replace: its session is open
        session = {"session_id": 777, "batch_seq": 1, "last_batch_flag": False}
        client.upload(audience, build_payload(maids(10, 83)), session, mode="replace")
    finally:
        client.close()
    report = run_upload(stack, csv_source(tmp_path, maids(1_000, 84)), audience, "replace")
    assert report["status"] == "failed" and report["ids_uploaded"] == 0
    assert "another replace of this audience is in progress" in report["message"]
    assert "1870145" in report["message"] and "wait until it ends" in report["message"]
    ours = [c for c in replace_calls(stack, audience) if c["session_id"] != 777]
    assert [(c["batch_seq"], c["status"]) for c in ours] == [(1, 400)]  # batch 1, refused


def test_resume_finishes_a_replace_run_in_its_mode(stack, tmp_path):
    """Chunks staged by a producer that died before publishing them: resume sends them as
    replace batches (batch 1 first) and closes the session."""
    audience, _ = audience_of(stack, tmp_path, 200, seed=79)
    new = maids(1_500, seed=80)
    store = RunStore(redis.Redis.from_url(stack.redis_url))
    run_id = create_run(store, RunRequest(audience, mode="replace"), csv_source(tmp_path, new))
    for chunk in range(3):
        assert store.stage_raw(run_id, chunk, new[chunk * 500 : chunk * 500 + 500], attempt=0)
    store.update(run_id, producer_done=1, source_done=1)
    done = cli(stack.env, "resume", run_id, "--wait", "--json")
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout.splitlines()[-1])
    assert report["mode"] == "replace" and report["session_closed"]
    assert stack.members(audience) == set(new)
    sent = [(c["batch_seq"], c["last_batch_flag"]) for c in replace_calls(stack, audience)]
    # batch 1 alone first, the other two in parallel (either may arrive first), the close last
    assert sent[0] == (1, False) and sorted(sent[1:3]) == [(2, False), (3, False)]
    assert sent[3:] == [(4, True)]
