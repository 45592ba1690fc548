"""Fleet-wide throttling with real processes: two upload workers share one ad account's limit;
the calls in flight follow a destination whose pace changed between runs."""

from __future__ import annotations

import itertools
import random
import threading
import uuid

import httpx
import pytest
import redis

from audiencesync.cli import devstack
from audiencesync.throttle.gate import Gate

LIMIT_PER_S = 10


def write_ids(path, n: int, seed: int) -> set[str]:
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    path.write_text("maid\n" + "\n".join(ids) + "\n")
    return set(ids)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A private stack: the sandbox limits each ad account to 10 upload calls/s (2 s penalty),
    answers in 100 ms +-50; one standard and two critical worker processes."""
    knobs = ["--rate", str(LIMIT_PER_S), "--penalty-s", "2", "--latency-ms", "75"]
    # 16 threads a worker, not the default 128: against a one-second bucket the budget rule
    # reaches 46-62 % of the limit with 128 (issue 15 is open on it); this scenario guards what
    # the gate did before the default rose, and stays a guard of "never into the wall".
    with devstack.private_stack(
        tmp_path_factory.mktemp("fleet"),
        *knobs,
        "--jitter-ms",
        "50",
        critical_workers=2,
        critical_concurrency="16",
    ) as stack:
        yield stack


def sandbox(stack, method: str, path: str, **body):
    response = httpx.request(method, f"{stack.graph_url}/_sandbox/{path}", json=body, timeout=60)
    response.raise_for_status()
    return response


def new_audience(stack) -> str:
    sandbox(stack, "POST", "reset")
    redis.Redis.from_url(stack.redis_url).delete(*Gate.keys("act_1001"))  # a fresh account
    return sandbox(stack, "POST", "audiences", ad_account_id="1001").json()["id"]


def members(stack, audience: str) -> set[str]:
    return set(sandbox(stack, "GET", f"audiences/{audience}/members").text.split())


def timeline(stack, audience: str) -> str:
    """The calls around each refusal (seconds since the first call, status), for a failure."""
    calls = sorted(sandbox(stack, "GET", f"audiences/{audience}/calls").json(),
                   key=lambda c: c["received_s"])  # fmt: skip
    t0 = calls[0]["received_s"]
    refused = {i for i, c in enumerate(calls) if c.get("status") == 400}
    near = sorted({j for i in refused for j in range(max(0, i - 12), min(len(calls), i + 3))})
    return "\n".join(
        f"{calls[j]['received_s'] - t0:.3f}-{calls[j].get('answered_s', t0) - t0:.3f} "
        f"{calls[j].get('status', '')}"
        for j in near
    )


def test_a_million_ids_at_the_accounts_limit_never_into_its_wall(fleet, tmp_path):
    ids = write_ids(tmp_path / "a.csv", 1_000_000, seed=1)
    audience = new_audience(fleet)
    report = fleet.upload(tmp_path / "a.csv", audience)
    stats = sandbox(fleet, "GET", "stats").json()
    assert report["status"] == "completed", report
    assert members(fleet, audience) == ids
    assert stats["calls_in_penalty"] <= 0.05 * stats["upload_calls"], timeline(fleet, audience)
    # Timing on a shared 2-core box: a lenient bound here; bench/throttle.py has the figure.
    assert report["throttle"]["requests_per_s"] >= 0.5 * LIMIT_PER_S


def test_latency_growing_with_load_lowers_the_fleets_concurrency(fleet, tmp_path):
    """No hard limit now, but every call in flight slows the others by 200 ms: the detector sees
    latency climb to 3x its baseline, cuts the load limit (to the calls in flight that serve the
    same calls a second at the baseline: a third or less), and says so."""
    ids = write_ids(tmp_path / "a.csv", 200_000, seed=2)
    audience = new_audience(fleet)
    sandbox(fleet, "POST", "config", rate_per_s=None, latency_ms=50, jitter_ms=0,
            latency_per_inflight_ms=200)  # fmt: skip
    r = redis.Redis.from_url(fleet.redis_url)
    limits: list[int] = []
    done = threading.Event()

    def watch() -> None:  # the account's load limit (the pace's need aside), as the run goes
        while not done.wait(0.1):
            if (limit := r.hget(Gate.keys("act_1001")[0], "limit")) is not None:
                limits.append(int(float(limit)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        report = fleet.upload(tmp_path / "a.csv", audience, chunk_size=2_000)
    finally:
        done.set()
        watcher.join()
    assert report["status"] == "completed", report
    assert members(fleet, audience) == ids
    throttle = report["throttle"]
    assert throttle["soft_episodes"] >= 1 and throttle["episodes"] == 0
    cuts = [(a, b) for a, b in itertools.pairwise(limits) if b < a]
    assert cuts and all(b <= a // 2 for a, b in cuts), limits  # deep cuts, never just trims
    logs = "".join(p.read_text() for p in fleet.logs.glob("critical*.log"))
    assert f"run={report['run_id']} soft throttling started on act_1001" in logs


def test_a_run_after_the_destination_slowed_down_goes_at_its_new_pace(tmp_path):
    """The default settings and deployment. Uploads at 5 ms teach the gate that pace; then the
    sandbox answers in 300 ms (no limit, no usage figures): the next run on the same account is
    not taken for throttling, and its calls in flight follow the new pace (200/s x 300 ms)."""
    csv = tmp_path / "ids.csv"
    sent = write_ids(csv, 300_000, seed=5)
    with devstack.private_stack(tmp_path / "stack", "--latency-ms", "5") as stack:
        first = stack.upload(csv, new_audience(stack))
        assert first["status"] == "completed", first["message"]
        assert first["throttle"]["pace_ms"] < 100
        sandbox(stack, "POST", "config", latency_ms=300, jitter_ms=0)
        audience = sandbox(stack, "POST", "audiences", ad_account_id="1001").json()["id"]
        report = stack.upload(csv, audience)  # the same account: what the gate learned stays
        assert members(stack, audience) == sent
    assert report["status"] == "completed", report["message"]
    throttle = report["throttle"]
    assert throttle["soft_episodes"] == 0 and throttle["episodes"] == 0, throttle
    assert throttle["pace_ms"] >= 250 and throttle["inflight_limit"] >= 50, throttle
