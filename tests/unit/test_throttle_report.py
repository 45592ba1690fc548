"""What the report and `status` say about throttling."""

from __future__ import annotations

import subprocess

import orjson
import redis

from audiencesync.cli import devstack
from audiencesync.cli.display import format_report
from audiencesync.domain.report import build_report
from audiencesync.settings import Settings
from audiencesync.store.meta import RunMeta
from audiencesync.store.runs import RunStore
from audiencesync.throttle.gate import Snapshot
from audiencesync.throttle.summary import throttle_section

META = {
    "started_at": "100.0",
    "ids_read": "20000",
    "audience_id": "9",
    "ad_account_id": "77",
    "throttle_events": "2",
    "throttle_cooldown_s": "5.5",
    "soft_throttle_events": "1",
}


def chunk(n: int, **fields) -> dict:
    base = {"chunk": n, "ids_in": 10_000, "uploaded": 10_000, "rejected": {}, "duplicates": 0,
            "failed": None, "ids_failed": 0, "requests": 1, "retries": 0, "throttled": 0,
            "num_received": 10_000, "num_invalid_entries": 0, "invalid_samples": []}  # fmt: skip
    return base | fields


def test_report_section_adds_up_the_runs_throttling():
    results = [chunk(0, deferrals=3, deferred_s=1.5), chunk(1, requests=2, throttled=1)]
    report = build_report("r1", RunMeta.parse(META), results, finished_at=104.0)
    report["requests"] += 1  # the session's closing call
    now = Snapshot(
        inflight_limit=3, cool_wait_s=0.0, soft=False, inflight=0, pace_s=1.62,
        usage_pct=41.0, per_call_pct=0.5,
    )  # fmt: skip
    section = throttle_section(
        "act_77", RunMeta.parse(META | {"budget_wait_s": "2.25"}), results, report, now
    )
    assert section == {
        "account": "act_77",
        "episodes": 2,
        "cooldown_s": 5.5,
        "soft_episodes": 1,
        "budget_calls_per_window": 200,  # 0.5 % a call
        "usage_pct": 41.0,
        "budget_wait_s": 2.25,
        "pace_ms": 1620.0,
        "inflight_limit": 3,
        "deferrals": 3,
        "deferred_s": 1.5,
        "requests_per_s": 1.0,  # 4 requests in 4 s
    }
    report["throttle"] = section
    assert (
        "  throttle on act_77: 2 block(s), cooled down 5.5s, 1 soft, 3 deferrals\n"
        "  budget at least 200 calls per window (usage 41%); waited 2.2 call-s for it; "
        "1.00 requests/s; pace 1620 ms, in-flight limit 3"
    ) in format_report(report)


def test_status_of_a_live_run_shows_the_accounts_throttle(redis_url):
    store = RunStore(redis.Redis.from_url(redis_url))
    store.create_run("live-1", {**META, "producer_done": 0})
    env = devstack.stack_env(redis_url, "http://127.0.0.1:9")
    human = subprocess.run(
        devstack.cli_command("status", "live-1"), env=env, capture_output=True, text=True
    )
    assert human.returncode == 0, human.stderr
    assert (
        "throttle on act_77: budget not shown yet (usage 0%), pace 0 ms, in-flight limit "
        f"{Settings().throttle_inflight_start}; "
        "2 block(s) so far (cooled down 5.5s), 1 soft"
    ) in human.stdout
    as_json = subprocess.run(
        devstack.cli_command("status", "live-1", "--json"), env=env, capture_output=True
    )
    throttle = orjson.loads(as_json.stdout)["throttle"]
    assert throttle["budget_calls_per_window"] == 0 and throttle["cooling_down_s"] == 0
