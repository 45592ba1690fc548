"""Helpers shared by the end-to-end tests that operate runs: the run store, polling, declared
audiences' producer worker, mirror runs through the command."""

from __future__ import annotations

import time

import orjson
import redis
from e2e_helpers import cli, write_csv

from audiencesync.store.runs import RunStore


def store(stack) -> RunStore:
    return RunStore(redis.Redis.from_url(stack.redis_url))


def poll(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.3)
    raise TimeoutError(what)


def runs_of(stack, name: str) -> list[tuple[dict, dict | None]]:
    """(meta, report) of every run of a declared audience, oldest first."""
    s = store(stack)
    found = [(s.meta(r), s.report(r)) for r in s.recent(200)]
    return sorted(
        ((m, rep) for m, rep in found if m.get("audience_name") == name),
        key=lambda pair: float(pair[0]["started_at"]),
    )


def mirror(stack, tmp_path, audience: str, rows: list[str], *extra: str):
    write_csv(tmp_path / "a.csv", rows)
    env = {**stack.env, "AUDIENCESYNC_STATE_DIR": str(tmp_path / "state")}
    env["AUDIENCESYNC_CHUNK_SIZE"] = "1000"
    args = ["upload", str(tmp_path / "a.csv"), "--column", "maid", "--audience-id", audience]
    return cli(env, *args, "--mode", "mirror", "--wait", "--json", *extra)


def report_of(done) -> dict:
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout.splitlines()[-1])
