"""The inputs users really have, through real processes (issue 14): hashed MAIDs in a semicolon
file, a pipe-delimited file without a header and with braces, and --max-rejected-pct."""

from __future__ import annotations

import hashlib
import random

import orjson
import pytest
import redis
from e2e_helpers import cli, maids, write_csv
from run_helpers import poll, runs_of, store

from audiencesync.domain.normalize import MIXED_RAW

pytestmark = pytest.mark.slow


def upload(stack, *args: str) -> tuple[int, dict | None, str]:
    done = cli(stack.env, "upload", *args, "--wait", "--json")
    lines = done.stdout.splitlines()
    return done.returncode, orjson.loads(lines[-1]) if lines else None, done.stderr


def test_hashed_ids_in_a_semicolon_file_go_as_they_are_and_raw_ones_are_not_mixed_in(
    stack, tmp_path
):
    ids = maids(3_000, seed=61)
    hashed = [hashlib.sha256(m.encode()).hexdigest() for m in ids]
    rows = [h.upper() if i % 3 == 0 else h for i, h in enumerate(hashed)] + ids[:40]
    random.Random(5).shuffle(rows)
    path = tmp_path / "hashed.csv"
    lines = "".join(f"u{i};{v};US\n" for i, v in enumerate(rows))
    path.write_text("user_id;maid;country\n" + lines)
    audience = stack.new_audience()
    code, report, err = upload(
        stack, str(path), "--column", "maid", "--hash", "--audience-id", audience
    )
    assert code == 0, err
    assert report["ids_read"] == len(rows) and report["unaccounted"] == 0
    assert report["ids_rejected"] == {MIXED_RAW: 40}
    assert report["ids_uploaded"] == len(hashed) and report["rejected_samples"] == {}
    assert stack.members(audience) == set(hashed)  # lower-cased, not hashed a second time


def test_a_pipe_file_without_header_with_braced_ids_lands_whole(stack, tmp_path):
    ids = maids(2_500, seed=62)
    path = tmp_path / "sdk.csv"
    path.write_text("".join(f"{i}|{{{m.upper()}}}|x\n" for i, m in enumerate(ids)) + "9|oops|x\n")
    audience = stack.new_audience()
    code, report, err = upload(
        stack, str(path), "--no-header", "--column", "2", "--audience-id", audience
    )
    assert code == 0, err
    assert report["ids_uploaded"] == len(ids) and report["ids_rejected"] == {"invalid_format": 1}
    assert report["rejected_samples"] == {"invalid_format": ["oops"]}
    assert stack.members(audience) == set(ids)


def test_max_rejected_pct_fails_before_anything_is_sent(stack, tmp_path):
    ids = maids(2_000, seed=63)
    rows = [m if i % 5 > 2 else f"u{i};{m}" for i, m in enumerate(ids)]  # 60 %: a stray field
    path = tmp_path / "half.csv"
    path.write_text("maid\n" + "\n".join(rows) + "\n")
    audience = stack.new_audience()
    runs_before = redis.Redis.from_url(stack.redis_url).zcard("as:runs")
    args = (str(path), "--audience-id", audience)
    code, report, err = upload(stack, *args, "--max-rejected-pct", "10")
    assert code == 1 and report is None
    assert err.strip().count("\n") == 0 and "nothing was sent: 1200 of 2000 values (60.0%)" in err
    assert "semicolon" in err and "--max-rejected-pct 10" in err
    assert redis.Redis.from_url(stack.redis_url).zcard("as:runs") == runs_before  # no run
    assert stack.calls(audience) == []

    code, report, err = upload(stack, *args, "--max-rejected-pct", "60")
    assert code == 0, err  # at the limit: sent, and the report says what was rejected and why
    assert report["ids_uploaded"] == 800 and report["ids_rejected"] == {"invalid_format": 1_200}
    assert len(report["rejected_samples"]["invalid_format"]) == 3
    assert all(len(s) <= 40 for s in report["rejected_samples"]["invalid_format"])
    assert report["status"] == "completed" and "(60.0%)" in report["message"]
    assert "semicolon" in report["message"]


def refused_declared_run(producer, name: str, declared: str, refusal: str) -> None:
    """Declare audience `name` (its TOML body), start it on the producer worker, and wait for
    the producer's one-line refusal: `audience=NAME not started: <refusal>`."""
    from tasks.start_run import start_run
    from workers.app import QUEUE_PRODUCER

    _, audiences_file, producer_log = producer
    audiences_file.write_text(f"[audiences.{name}]\nevery_s = 3600\n{declared}")
    start_run.apply_async(args=[name], queue=QUEUE_PRODUCER)
    line = f"audience={name} not started: {refusal}"
    poll(lambda: line in producer_log.read_text(), 60, "the producer's one-line refusal")


def test_a_declared_max_rejected_pct_stops_a_scheduled_run_before_it_exists(
    stack,
    producer,
    tmp_path,
):
    rows = [m if i % 5 > 2 else f"u{i};{m}" for i, m in enumerate(maids(1_000, seed=64))]
    path = tmp_path / "half.csv"
    path.write_text("maid\n" + "\n".join(rows) + "\n")
    audience = stack.new_audience()
    name = f"gated-{audience}"
    declared = f'audience_id = "{audience}"\nfile = "{path}"\nmax_rejected_pct = 10\n'
    refused_declared_run(producer, name, declared, "nothing was sent: 600 of 1000 values (60.0%)")
    assert runs_of(stack, name) == [] and stack.calls(audience) == []
    lock = store(stack).r.get(store(stack).lock_key(name))
    assert lock is None  # released: the next tick may run it once the source is fixed


def test_a_scheduled_replace_of_an_audience_too_big_to_replace_is_not_started(
    stack, producer, tmp_path
):
    """Meta cannot replace an audience of 100M people or more: the producer reads its size
    first, as the upload command does, and sends nothing."""
    write_csv(tmp_path / "ids.csv", maids(300, seed=65))
    audience = stack.new_audience()
    stack.resize_audience(audience, 10**8)
    name = f"huge-{audience}"
    declared = f'audience_id = "{audience}"\nfile = "{tmp_path / "ids.csv"}"\nmode = "replace"\n'
    refused_declared_run(
        producer, name, declared, "the audience has about 100,000,000 people: Meta cannot"
    )
    assert "nothing was sent" in producer[2].read_text()
    assert runs_of(stack, name) == [] and stack.calls(audience) == []
