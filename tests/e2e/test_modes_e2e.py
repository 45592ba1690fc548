"""Sync modes end to end: real workers, the sandbox over HTTP, its audience's final content."""

from __future__ import annotations

import itertools

import orjson
import redis
from e2e_helpers import cli, csv_source, maids, run_upload, write_csv

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


def test_replace_sends_one_batch_at_a_time_in_order_and_leaves_exactly_the_new_set(
    stack, sandbox_knobs, tmp_path
):
    audience, old = audience_of(stack, tmp_path, 600, seed=73)
    sandbox_knobs(latency_ms=15, jitter_ms=15)  # calls that overlapped would show it
    new = old[:200] + maids(2_300, seed=74)
    rows = new[:1_000] + ["not-an-id"] * 500 + new[1_000:]  # chunk 2 sends no batch at all
    report = run_upload(stack, csv_source(tmp_path, rows), audience, "replace", chunk_size=500)
    assert report["status"] == "completed", report
    assert report["mode"] == "replace" and report["session_closed"]
    assert report["ids_uploaded"] == len(new) and report["chunks"] == 6
    assert stack.members(audience) == set(new)
    calls = replace_calls(stack, audience)
    assert all(c["status"] == 200 for c in calls)
    assert [c["batch_seq"] for c in calls] == list(range(1, 5 + 1 + 1))  # 5 batches, the close
    assert [c["last_batch_flag"] for c in calls] == [False] * 5 + [True]
    assert len({c["session_id"] for c in calls}) == 1
    assert all(a["answered_s"] <= b["received_s"] for a, b in itertools.pairwise(calls))
    assert report["retries"] == 0


def test_a_replace_batch_failing_for_good_leaves_the_session_open_and_the_audience_as_it_was(
    stack, sandbox_knobs, tmp_path
):
    audience, old = audience_of(stack, tmp_path, 300, seed=75)
    sandbox_knobs(fail_batch_seq=2)
    new = maids(2_000, seed=76)
    report = run_upload(stack, csv_source(tmp_path, new), audience, "replace", chunk_size=500)
    assert report["status"] == "failed" and not report["session_closed"]
    assert "left open" in report["message"] and "run the replace again" in report["message"]
    assert "fail_batch_seq" in report["message"]  # Meta's reason for the batch it refused
    calls = replace_calls(stack, audience)
    assert [(c["batch_seq"], c["status"]) for c in calls] == [(1, 200), (2, 400)]  # no retry
    assert not any(c["last_batch_flag"] for c in calls)
    assert stack.members(audience) == set(old)
    # Every ID is accounted for: one batch accepted, the rest failed or never sent.
    assert report["ids_uploaded"] == 500 and report["unaccounted"] == 0
    assert report["ids_failed"] == report["ids_read"] - 500
    reasons = report["failure_reasons"]
    assert sum(reasons.values()) == report["chunks"] - 1
    assert any(r.startswith("not sent: an earlier replace batch failed") for r in reasons)
    done = cli(stack.env, "resume", report["run_id"])
    assert done.returncode == 1 and "cannot be resumed" in done.stderr


def test_replace_retries_re_send_the_same_batch_and_the_result_is_exact(
    stack, sandbox_knobs, tmp_path
):
    """Transient errors, half of them after the batch was applied: a retry re-sends its
    batch_seq before any other batch goes, which the session accepts."""
    audience, _ = audience_of(stack, tmp_path, 400, seed=77)
    # 12 batches and a close at 40 %: no error at all once in 800 runs, a chunk giving up
    # (12 errors in a row) far more rarely.
    sandbox_knobs(transient_rate=0.4)
    new = maids(3_000, seed=78)
    report = run_upload(stack, csv_source(tmp_path, new), audience, "replace", chunk_size=250)
    assert report["status"] == "completed", report
    assert stack.members(audience) == set(new)
    calls = replace_calls(stack, audience)
    assert report["retries"] > 0 and report["requests"] == len(calls)
    seqs = [c["batch_seq"] for c in calls]
    assert seqs == sorted(seqs) and set(seqs) == set(range(1, 12 + 1 + 1))


def test_resume_finishes_a_replace_run_in_its_mode(stack, tmp_path):
    """Chunks staged by a producer that died before publishing them: resume sends them as
    replace batches, in order, and closes the session."""
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
    calls = replace_calls(stack, audience)
    assert [(c["batch_seq"], c["last_batch_flag"]) for c in calls] == [
        (1, False), (2, False), (3, False), (4, True)
    ]  # fmt: skip
