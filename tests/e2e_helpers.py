"""Shared by the end-to-end tests: dirty audiences, an independent oracle for them, and what
tests see of the sandbox."""

from __future__ import annotations

import csv
import random
import re
import subprocess
import uuid
from collections import Counter

import httpx

from audiencesync.cli import devstack
from audiencesync.graph import GraphClient
from audiencesync.settings import Settings
from audiencesync.store.runs import RunStore

MAID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ZERO = "00000000-0000-0000-0000-000000000000"


def dirty_rows(n: int, seed: int = 7) -> list[str]:
    """n raw values: upper case, padding, blanks, junk, opted-out zeros and duplicates."""
    rng = random.Random(seed)
    rows: list[str] = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.03:
            rows.append("")
        elif roll < 0.06:
            rows.append(rng.choice(["not-an-id", "12345", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"]))
        elif roll < 0.08:
            rows.append(ZERO)
        elif roll < 0.13 and rows:
            rows.append(f"  {rng.choice(rows[-50:]).upper()} ")  # a near duplicate
        else:
            maid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            rows.append(maid.upper() if roll < 0.5 else f" {maid}\t" if roll < 0.6 else maid)
    return rows


def maids(n: int, seed: int) -> list[str]:
    """n distinct, clean, normalised MAIDs."""
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def expected(rows: list[str], chunk_size: int = 10_000) -> dict:
    """What a correct run must report, computed independently of audiencesync's code."""
    members: set[str] = set()
    uploaded = duplicates = rejected = 0
    for start in range(0, len(rows), chunk_size):
        seen: set[str] = set()
        for raw in rows[start : start + chunk_size]:
            value = raw.strip().lower()
            if not MAID.fullmatch(value) or value == ZERO:
                rejected += 1
            elif value in seen:
                duplicates += 1
            else:
                seen.add(value)
        uploaded += len(seen)
        members |= seen
    return {
        "members": members,
        "uploaded": uploaded,
        "duplicates": duplicates,
        "rejected": rejected,
    }


def assert_exact(stack, audience: str, report: dict, rows: list[str], chunk_size=10_000) -> None:
    """Every ID arrived, and every chunk was counted exactly once."""
    want = expected(rows, chunk_size)
    assert report["status"] == "completed", report
    assert report["unaccounted"] == 0 and report["ids_read"] == len(rows)
    assert report["chunks"] == -(-len(rows) // chunk_size)
    assert report["ids_uploaded"] == want["uploaded"]
    assert report["duplicates"] == want["duplicates"]
    assert sum(report["ids_rejected"].values()) == want["rejected"]
    assert stack.members(audience) == want["members"]


def cli(env: dict[str, str], *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """`audiencesync ARGS` as a user runs it: a process, its exit code and output."""
    command = devstack.cli_command(*args)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)


class SandboxViews:
    """The sandbox's inspection endpoints, and audiences created through our own Graph client,
    as an operator would (with the stack's token and app secret)."""

    graph_url: str
    token: str = devstack.SANDBOX_TOKEN
    app_secret: str | None = None

    def sandbox_stats(self) -> dict:
        return httpx.get(f"{self.graph_url}/_sandbox/stats").json()

    def members(self, audience_id: str) -> set[str]:
        text = httpx.get(f"{self.graph_url}/_sandbox/audiences/{audience_id}/members").text
        return set(filter(None, text.split("\n")))

    def calls(self, audience_id: str) -> list[dict]:
        return httpx.get(f"{self.graph_url}/_sandbox/audiences/{audience_id}/calls").json()

    def batches_sent(self, audience_id: str) -> Counter[int]:
        """How many calls carried each batch_seq (the closing batch left out)."""
        calls = self.calls(audience_id)
        return Counter(c["batch_seq"] for c in calls if not c["last_batch_flag"])

    def configure_sandbox(self, **knobs) -> None:
        response = httpx.post(f"{self.graph_url}/_sandbox/config", json=knobs)
        response.raise_for_status()

    def resize_audience(self, audience_id: str, approximate_count: int) -> None:
        """The size Meta reports for the audience, without uploading that many people."""
        response = httpx.post(
            f"{self.graph_url}/_sandbox/audiences/{audience_id}",
            json={"approximate_count": approximate_count},
        )
        response.raise_for_status()

    def new_audience(self, name: str = "test") -> str:
        settings = Settings(
            graph_url=self.graph_url, access_token=self.token, app_secret=self.app_secret
        )
        client = GraphClient(settings)
        try:
            return client.create_audience("1001", name)
        finally:
            client.close()


def run_upload(stack, source, audience_id: str, mode: str = "add", **settings_kw) -> dict:
    import redis

    from audiencesync.cli.runs import wait_for_report
    from producers.pipeline import RunRequest, create_run, produce

    settings = Settings(redis_url=stack.redis_url, **settings_kw)
    store = RunStore(redis.Redis.from_url(stack.redis_url))
    run_id = create_run(store, RunRequest(audience_id, mode=mode), source)
    produce(store, run_id, source, settings)
    return wait_for_report(store, run_id, timeout_s=300)


def write_csv(path, rows, header="maid"):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", header])
        w.writerows([i, r] for i, r in enumerate(rows))


def csv_source(tmp_path, rows):
    from producers.spec import open_source

    write_csv(tmp_path / "a.csv", rows)
    return open_source(str(tmp_path / "a.csv"), column="maid", settings=Settings())
