"""Benchmark: fleet-wide throttling against the sandbox, with real processes.

    python -m bench.throttle [--ids 1000000] [--repeat 3] [--out bench/results/throttle.json]
                             [--only rate|load|window|score|pace] [--trace]

A. The ad account allows 10 upload calls/s (2 s penalty), calls take 75-125 ms. audiencesync
   (2 critical workers) on a fresh account, then again on the account it has learned, against
   today's script: one 10,000-ID call, then time.sleep(1/limit), and again.
B. No hard limit, but calls take 100 ms plus 300 ms for every other call in flight (a
   destination that slows down under load, so one call at a time is fastest): the latency
   detector (on a new account, then again on the one whose limit it learned) against fixed
   in-flight limits with the detector off, tuned by hand (1) or not (4), all at 50 calls/s;
   half the IDs. Printed beside a new account's floor: hand-tuned plus one pair's least cost.
Every stack is warmed first by an upload to another ad account (workers run for days in
production; a first task's imports and connections are no part of a run): a small one, and in
B one of the run's size, as its first calls decide the load limit (after a 30,000-ID warm-up the
first run's first call took 0.21-0.23 s, 0.11 s of it in the sandbox; later ones 0.10-0.12 s);
every contender runs --repeat times, interleaved; the tables give the median and the range.
C and D (bench/throttle_budget.py): Meta's deep budgets, a rolling window and a score, each run
beside the best schedule the model allows. E (bench/throttle_pace.py): a change of pace.
--trace adds each run's per-second timeline (bench/throttle_trace.py).
Scenario A's share of the limit: over the whole run, and while calling (sandbox call records).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import redis

from audiencesync.cli import devstack
from audiencesync.errors import ThrottledError
from audiencesync.graph import GraphClient, build_payload
from audiencesync.settings import MAX_CHUNK_IDS, Settings
from audiencesync.throttle.gate import Gate
from bench.run import machine
from bench.schedule import pair_cost_s
from bench.throttle_budget import BUDGET_IDS, BUDGETS, budget_tables, run_budgets
from bench.throttle_pace import pace_tables, run_pace
from bench.throttle_show import summary, tables
from bench.throttle_trace import trace_stack

LIMIT_PER_S = 10
RATE_KNOBS = ("--rate", str(LIMIT_PER_S), "--penalty-s", "2", "--latency-ms", "75",
              "--jitter-ms", "50")  # fmt: skip
LOAD_LATENCY_MS, LOAD_PER_INFLIGHT_MS = 100, 300
LOAD_KNOBS = ("--latency-ms", str(LOAD_LATENCY_MS), "--latency-per-inflight-ms",
              str(LOAD_PER_INFLIGHT_MS))  # fmt: skip
PAIR_COST_S = pair_cost_s(LOAD_LATENCY_MS / 1000, LOAD_PER_INFLIGHT_MS / 1000)
WARM_UP_IDS = 30_000


def sandbox(stack: devstack.PrivateStack, method: str, path: str, **body) -> dict:
    response = httpx.request(method, f"{stack.graph_url}/_sandbox/{path}", json=body, timeout=60)
    response.raise_for_status()
    return response.json()


def fresh_audience(
    stack: devstack.PrivateStack, *, forget_account: bool, account: str = "1001"
) -> str:
    sandbox(stack, "POST", "reset")
    if forget_account:
        redis.Redis.from_url(stack.redis_url).delete(*Gate.keys(f"act_{account}"))
    return str(sandbox(stack, "POST", "audiences", ad_account_id=account)["id"])


def warm_up(stack: devstack.PrivateStack, csv: Path) -> None:
    """A small upload to another ad account: the workers' first tasks are behind us."""
    report = stack.upload(csv, fresh_audience(stack, forget_account=True, account="2002"))
    assert report["status"] == "completed", report["message"]


def shares(stack: devstack.PrivateStack, audience: str, calls_per_s: float) -> dict:
    """The share of the limit over the whole run, and while calling: calls / (the last call's
    arrival - the first's), from the sandbox's call records, the same for every contender."""
    received_s = [c["received_s"] for c in sandbox(stack, "GET", f"audiences/{audience}/calls")]
    calling_s = max(received_s) - min(received_s)  # 0 with one call: no rate to speak of
    while_calling = len(received_s) / calling_s / LIMIT_PER_S if calling_s else float("nan")
    return {
        "share_of_limit_whole_run": round(calls_per_s / LIMIT_PER_S, 3),
        "share_of_limit_while_calling": round(while_calling, 3),
    }


def ours(
    stack: devstack.PrivateStack,
    csv: Path,
    *,
    forget_account: bool = True,
    limited: bool = True,
    timeline: bool = False,
) -> dict:
    """One `upload` through the stack, traced (timeline: add the per-second timeline)."""
    audience = fresh_audience(stack, forget_account=forget_account)
    with trace_stack(stack.redis_url, stack.env) as trace:
        report = stack.upload(csv, audience)
    stats = sandbox(stack, "GET", "stats")
    assert report["status"] == "completed", report["message"]
    requests_per_s = report["throttle"]["requests_per_s"]
    share = shares(stack, audience, requests_per_s) if limited else {}
    return {
        "duration_s": report["duration_s"],
        "requests": report["requests"],
        "requests_per_s": requests_per_s,
        **share,
        "throttled_calls": stats["throttled"],
        "calls_in_penalty": stats["calls_in_penalty"],
        "soft_episodes": report["throttle"]["soft_episodes"],
        "budget_calls_per_window": report["throttle"]["budget_calls_per_window"],
        "budget_wait_s": report["throttle"]["budget_wait_s"],
        "inflight_limit": report["throttle"]["inflight_limit"],
        "first_call_after_s": round(trace.first_send_s(), 2),
    } | ({"timeline": trace.timeline()} if timeline else {})


def fixed_sleep_script(stack: devstack.PrivateStack, ids: list[str]) -> dict:
    """Today's script: one call of 10,000 IDs, sleep 1/limit, next; a refused call is re-sent."""
    audience = fresh_audience(stack, forget_account=True)
    client = GraphClient(Settings(graph_url=stack.graph_url, access_token=devstack.SANDBOX_TOKEN))
    chunks = [ids[i : i + MAX_CHUNK_IDS] for i in range(0, len(ids), MAX_CHUNK_IDS)]
    calls = throttled = 0
    started = time.perf_counter()
    for seq, chunk in enumerate(chunks, start=1):
        session = {"session_id": 7, "batch_seq": seq, "last_batch_flag": seq == len(chunks)}
        while True:
            calls += 1
            try:
                client.upload(audience, build_payload(chunk), session)
                break
            except ThrottledError:
                throttled += 1
            finally:
                time.sleep(1 / LIMIT_PER_S)
    duration_s = time.perf_counter() - started
    client.close()
    stats = sandbox(stack, "GET", "stats")
    return {
        "duration_s": round(duration_s, 3),
        "requests": calls,
        "requests_per_s": round(calls / duration_s, 3),
        **shares(stack, audience, calls / duration_s),
        "throttled_calls": throttled,
        "calls_in_penalty": stats["calls_in_penalty"],
    }


def fixed_inflight(n: int) -> dict[str, str]:
    """Settings for a hand-set concurrency: in-flight limit n, the latency detector off."""
    return {"throttle_latency_factor": "0", "throttle_inflight_start": str(n),
            "throttle_inflight_floor": str(n), "throttle_inflight_ceiling": str(n)}  # fmt: skip


def detector_floor(load: dict) -> dict:
    """The hand-tuned run plus one pair's cost: how fast a new account's run can be at best."""
    hand_tuned_s = load["fixed_inflight_1_hand_tuned"]["median"]["duration_s"]
    floor_s = round(hand_tuned_s + PAIR_COST_S, 3)
    new_s = load["audiencesync_latency_detector"]["median"]["duration_s"]
    return {"pair_cost_s": round(PAIR_COST_S, 3), "floor_s": floor_s,
            "new_account_over_floor": round(new_s / floor_s, 3),
            "new_account_over_hand_tuned": round(new_s / hand_tuned_s, 3)}  # fmt: skip


LOAD_VARIANTS = {
    "audiencesync_latency_detector": {},
    "fixed_inflight_1_hand_tuned": fixed_inflight(1),
    "fixed_inflight_4": fixed_inflight(4),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/throttle.json"))
    parser.add_argument("--trace", action="store_true", help="per-second timeline of each run")
    parser.add_argument(
        "--only", choices=("rate", "load", *BUDGETS, "pace"), help="one scenario only"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender")
    args = parser.parse_args()
    rng = random.Random(1)
    count = max(args.ids, BUDGET_IDS if args.only in (None, *BUDGETS) else 0)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]
    results: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "ids": args.ids,
        "repeat": args.repeat,
        "rate_limit_per_s": LIMIT_PER_S,
    }
    trace = args.trace
    with tempfile.TemporaryDirectory(prefix="audiencesync-bench-") as tmp:
        work = Path(tmp)
        csv, half_csv, warm_csv = work / "audience.csv", work / "half.csv", work / "warm.csv"
        budget_csv = work / "budget.csv"
        budget_csv.write_text("maid\n" + "\n".join(ids[:BUDGET_IDS]) + "\n")
        ids = ids[: args.ids]
        csv.write_text("maid\n" + "\n".join(ids) + "\n")
        half_csv.write_text("maid\n" + "\n".join(ids[: len(ids) // 2]) + "\n")
        warm_csv.write_text("maid\n" + "\n".join(ids[:WARM_UP_IDS]) + "\n")
        runs: dict[str, list] = {}
        if args.only in (None, "rate"):
            with devstack.private_stack(work / "a", *RATE_KNOBS, critical_workers=2) as stack:
                warm_up(stack, warm_csv)
                for _ in range(args.repeat):
                    for name, run in [
                        ("audiencesync_new_account", lambda: ours(stack, csv, timeline=trace)),
                        ("audiencesync_learned_account",
                         lambda: ours(stack, csv, forget_account=False, timeline=trace)),
                        ("fixed_sleep_script", lambda: fixed_sleep_script(stack, ids)),
                    ]:  # fmt: skip
                        runs.setdefault(name, []).append(run())
            results["rate_limit"] = {name: summary(r) for name, r in runs.items()}
        runs = {}
        for name, settings in LOAD_VARIANTS.items() if args.only in (None, "load") else ():
            with devstack.private_stack(
                work / name,
                *LOAD_KNOBS,
                critical_workers=2,
                throttle_rate_per_s="50",
                **settings,
            ) as stack:
                warm_up(stack, half_csv)
                for _ in range(args.repeat):
                    runs.setdefault(name, []).append(
                        ours(stack, half_csv, limited=False, timeline=trace)
                    )
                    if not settings:  # the detector again, on the account whose limit it learned
                        runs.setdefault(f"{name}_learned_account", []).append(
                            ours(stack, half_csv, forget_account=False, limited=False,
                                 timeline=trace)
                        )  # fmt: skip
        if runs:
            results["latency_grows_with_load"] = load = {n: summary(r) for n, r in runs.items()}
            results["load_detector_floor"] = detector_floor(load)
        names = [n for n in BUDGETS if args.only in (None, n)]
        if names:
            results["budgets"] = run_budgets(
                work, budget_csv, names, args.repeat,
                fresh=lambda stack, forget: fresh_audience(stack, forget_account=forget),
                warm_up=lambda stack: warm_up(stack, warm_csv),
            )  # fmt: skip
        if args.only in (None, "pace"):
            results["pace"] = run_pace(
                work, csv, args.repeat,
                fresh=lambda stack, forget: fresh_audience(stack, forget_account=forget),
                warm_up=lambda stack: warm_up(stack, warm_csv),
            )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    budgets, pace = results.get("budgets", {}), results.get("pace", {})
    print("\n".join(tables(results) + budget_tables(budgets) + pace_tables(pace)))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
