"""`audiencesync` as a user runs it: a real process, real exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import time
import uuid

import orjson
import pytest
from e2e_helpers import cli, dirty_rows, expected, write_csv

from audiencesync.cli import devstack


def test_upload_wait_json_then_status(stack, tmp_path):
    rows = dirty_rows(25_000, seed=3)
    write_csv(tmp_path / "a.csv", rows)
    audience = stack.new_audience()
    done = cli(stack.env, *upload_args(tmp_path / "a.csv", audience, "--column", "maid"))
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.splitlines()[0]
    report = orjson.loads(done.stdout.splitlines()[-1])
    assert report["run_id"] == run_id and report["status"] == "completed"
    assert report["ids_uploaded"] == expected(rows)["uploaded"]
    assert "chunks 3/3" in done.stderr  # the progress bar's final line

    status = cli(stack.env, "status", run_id, "--json")
    assert status.returncode == 0
    assert orjson.loads(status.stdout) == report
    human = cli(stack.env, "status", run_id)
    assert f"run {run_id}: COMPLETED" in human.stdout


def test_upload_without_wait_enqueues_and_returns(stack, tmp_path):
    write_csv(tmp_path / "a.csv", dirty_rows(1_000, seed=4))
    done = cli(
        stack.env,
        "upload",
        str(tmp_path / "a.csv"),
        "--audience-id",
        stack.new_audience(),
        "--column",
        "maid",
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    assert f"audiencesync status {run_id}" in done.stderr
    deadline = time.monotonic() + 30
    while (
        (status := cli(stack.env, "status", run_id)).returncode == 0
        and "COMPLETED" not in status.stdout
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert "COMPLETED" in status.stdout


def upload_args(path, audience: str, *extra: str) -> list[str]:
    return ["upload", str(path), "--audience-id", audience, "--wait", "--json", *extra]


@pytest.mark.parametrize(
    ("bad", "rejected"),
    [
        (b"not-an-id\n\xff\xfe-not-utf8\n12345\n", {"invalid_format": 2, "not_utf8": 1}),
        (b"x" * 1_000_000 + b"\n", {"invalid_format": 1}),
    ],
    ids=["junk-and-non-utf8", "one-megabyte-line"],
)
def test_bad_rows_are_counted_as_rejected_and_the_run_completes(stack, tmp_path, bad, rejected):
    maids = [str(uuid.uuid4()) for _ in range(100)]
    lines = [m.encode() + b"\n" for m in maids]
    (tmp_path / "a.csv").write_bytes(b"maid\n" + b"".join(lines[:50]) + bad + b"".join(lines[50:]))
    audience = stack.new_audience()
    done = cli(stack.env, *upload_args(tmp_path / "a.csv", audience))
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout.splitlines()[-1])
    assert report["status"] == "completed" and report["ids_rejected"] == rejected
    assert report["ids_uploaded"] == 100 and stack.members(audience) == set(maids)


@pytest.mark.parametrize(
    ("make_args", "messages"),
    [
        (lambda p, a: [str(p / "missing.csv"), "--audience-id", a], ["no such file"]),
        (lambda p, a: [str(p), "--audience-id", a], ["is a directory; pass a file"]),
        (lambda p, a: [str(p / "empty.csv"), "--audience-id", a], ["is empty", "check the file"]),
        (
            lambda p, a: [str(p / "a.csv"), "--audience-id", a, "--column", "nope"],
            ["columns are: id, maid", "pass --column"],
        ),
        (  # Meta's own message, then what to do
            lambda p, a: [str(p / "a.csv"), "--audience-id", "999999"],
            ["audience 999999 cannot be used", "does not exist", "(--audience-id, or audience_id"],
        ),
    ],
    ids=["missing-file", "directory", "empty-file", "missing-column", "unknown-audience"],
)
def test_bad_input_fails_in_one_line_before_anything_is_sent(stack, tmp_path, make_args, messages):
    write_csv(tmp_path / "a.csv", ["6d92078a-8246-4ba4-ae5b-76104861e7dc"], header="maid")
    (tmp_path / "empty.csv").write_bytes(b"")
    audience = stack.new_audience()
    done = cli(stack.env, "upload", *make_args(tmp_path, audience))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiencesync: error:"), done.stderr
    assert all(m in lines[0] for m in messages), lines[0]
    assert stack.calls(audience) == []


def test_snowflake_query_error_is_one_line(stack, fakesnow_kwargs):
    login = ("account", "user", "password", "host", "port", "protocol")
    env = stack.env | {
        f"AUDIENCESYNC_SNOWFLAKE_{k.upper()}": str(fakesnow_kwargs[k]) for k in login
    }
    audience = stack.new_audience()
    done = cli(env, "upload", "--query", "SELEC maid FROM nowhere", "--audience-id", audience)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiencesync: error: Snowflake query failed")
    assert lines[0].endswith("check the query")
    assert stack.calls(audience) == []


def test_wrong_token_costs_one_call_and_names_the_setting(stack, sandbox_knobs, tmp_path):
    sandbox_knobs(latency_ms=1500)  # Meta's pace: the answer comes late, nothing goes meanwhile
    write_csv(tmp_path / "a.csv", dirty_rows(25_000, seed=9))
    env = {**stack.env, "AUDIENCESYNC_ACCESS_TOKEN": "expired-token"}
    audience = stack.new_audience()
    calls_before = stack.sandbox_stats()["calls"]
    done = cli(env, "upload", str(tmp_path / "a.csv"), "--column=maid", "--audience-id", audience)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "AUDIENCESYNC_ACCESS_TOKEN" in done.stderr and "expired-token" not in done.stderr
    assert stack.sandbox_stats()["calls"] - calls_before == 1  # the preflight: no retry storm


def test_redis_down_is_a_clear_error_not_a_hang(stack, tmp_path):
    write_csv(tmp_path / "a.csv", dirty_rows(10))
    env = {**stack.env, "AUDIENCESYNC_REDIS_URL": f"redis://:pw@127.0.0.1:{devstack.free_port()}/0"}
    # A command that hangs instead of failing is killed at the timeout: the test errors.
    done = cli(env, "upload", str(tmp_path / "a.csv"), "--audience-id", "1", timeout_s=60)
    assert done.returncode == 1
    assert "cannot reach Redis" in done.stderr and ":pw@" not in done.stderr


@pytest.mark.parametrize("command", ["status", "resume"])
def test_unknown_run(stack, command):
    done = cli(stack.env, command, "no-such-run")
    assert done.returncode == 1 and "no run no-such-run" in done.stderr


def test_hash_sends_sha256_of_normalised_ids(stack, tmp_path):
    import hashlib

    rows = dirty_rows(12_000, seed=5)
    write_csv(tmp_path / "a.csv", rows)
    audience = stack.new_audience()
    done = cli(stack.env, *upload_args(tmp_path / "a.csv", audience, "--column", "maid", "--hash"))
    assert done.returncode == 0, done.stderr
    hashed = {hashlib.sha256(m.encode()).hexdigest() for m in expected(rows)["members"]}
    assert stack.members(audience) == hashed


def test_status_of_a_live_run_shows_progress_with_an_estimate(stack, sandbox_knobs, tmp_path):
    rows = dirty_rows(120_000, seed=6)
    write_csv(tmp_path / "a.csv", rows)
    audience = stack.new_audience()
    sandbox_knobs(latency_ms=300)  # slow enough to look at the run while it goes on
    env = {**stack.env, "AUDIENCESYNC_STAGING_WINDOW_CHUNKS": "4"}  # a few chunks at a time
    proc = subprocess.Popen(
        devstack.cli_command(
            "upload", str(tmp_path / "a.csv"), "--column", "maid", "--audience-id", audience
        ),
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    run_id = proc.stdout.readline().strip()
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = cli(stack.env, "status", run_id).stdout
        if f"run {run_id}: running" not in live:
            break
        if "IDs/s" in live:
            seen.append(live)
    proc.wait(timeout=60)
    # Mid-run, the CSV's byte offset gives an estimate of the total before the end of the file.
    shares = [float(line.split("%")[0].split("]")[-1]) for line in seen]
    assert any(0 < share < 100 for share in shares), seen
    assert any("ETA" in line and "ETA     ?" not in line for line in seen)


def test_a_run_that_sends_nothing_fails_and_points_at_the_column(stack, tmp_path):
    write_csv(tmp_path / "a.csv", dirty_rows(2_000, seed=7))  # column "id" holds row numbers
    done = cli(stack.env, *upload_args(tmp_path / "a.csv", stack.new_audience()))
    assert done.returncode == 1
    report = orjson.loads(done.stdout.splitlines()[-1])
    assert report["status"] == "failed" and "--column" in report["message"]
    assert report["ids_rejected"] == {"invalid_format": 2_000}
