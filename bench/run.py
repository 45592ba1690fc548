"""Run the three contenders side by side against the sandbox, print the table, save JSON + PNG.

python -m bench.run                      # 1M and 5M IDs at 200 ms (+ up to 100 ms jitter)
python -m bench.run --sizes 1000000 --latency-ms 50
python -m bench.run --big                # adds 40M (the SDK loop is skipped there: ~2.5 h)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx

from audiencesync.cli import devstack
from audiencesync.settings import Settings
from bench.contenders import Outcome, run_audiencesync, run_lean, run_sdk
from bench.data import write_maids_csv
from bench.measure import CpuMeter, PeakSampler, redis_commands
from bench.profile import Recorders, record_args, summary
from bench.show import LEARNED_ACCOUNT, NEW_ACCOUNT, chart, table
from bench.throttle_trace import trace_stack

RESULTS = Path(__file__).parent / "results"
SDK_MAX_IDS = 5_000_000  # beyond this the sequential SDK loop takes hours
WARM_UP_IDS = 30_000


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Python {platform.python_version()}"


def new_audience(graph_url: str, ad_account_id: str = "1001") -> str:
    httpx.post(f"{graph_url}/_sandbox/reset").raise_for_status()  # frees the last run's members
    answer = httpx.post(f"{graph_url}/_sandbox/audiences", json={"ad_account_id": ad_account_id})
    return answer.json()["id"]


def warm_up(env: dict[str, str], workdir: Path, graph_url: str) -> None:
    """Workers run for days in production: their first tasks' imports and connections belong to
    no run. A small upload to another ad account (the gate learns nothing of 1001 from it)."""
    csv_path = write_maids_csv(workdir / "warm.csv", WARM_UP_IDS)
    account = {"AUDIENCESYNC_AD_ACCOUNT_ID": "2002"}
    run_audiencesync(csv_path, new_audience(graph_url, "2002"), env | account)


@dataclass
class Run:
    """One size's running stack: what an audiencesync run on it needs to be measured."""

    ids: int
    csv_path: Path
    graph_url: str
    redis_url: str
    env: dict[str, str]
    roots: dict[str, int]  # worker name: pid
    sandbox_pid: int
    redis_pid: int
    trace: bool = False  # add the gate's per-second timeline (bench/throttle_trace.py)

    def ours(self, name: str, wrap: list[str] | None = None) -> Outcome:
        """`upload` into a new audience, with its memory, CPU and Redis commands measured."""
        audience_id = new_audience(self.graph_url)
        metered = self.roots | {"sandbox": self.sandbox_pid, "redis-server": self.redis_pid}
        sampled = self.roots | {"sandbox": self.sandbox_pid}  # it holds every member, as Meta
        commands_before = redis_commands(self.redis_url)
        trace = trace_stack(self.redis_url, self.env) if self.trace else None
        with (
            PeakSampler(sampled, self.redis_url) as peaks,
            CpuMeter(metered) as cpu,
            trace or nullcontext(),
        ):
            ours = run_audiencesync(self.csv_path, audience_id, self.env, wrap=wrap or [])
        commands = Counter(redis_commands(self.redis_url))
        commands.subtract(commands_before)
        members = httpx.get(f"{self.graph_url}/_sandbox/stats").json()["audiences"]
        calls = httpx.get(f"{self.graph_url}/_sandbox/audiences/{audience_id}/calls").json()
        started_s = ours.extra.pop("started_monotonic_s")
        assert ours.extra["report"]["status"] == "completed", ours.extra["report"]
        assert sum(a["members"] for a in members.values()) == self.ids, "sandbox lost IDs"
        ours.name = name
        ours.extra |= {
            # where the wall time goes: before the first call, calling, after the last answer
            "first_call_s": min(c["received_s"] for c in calls) - started_s,
            "last_answer_s": max(c["answered_s"] for c in calls) - started_s,
            "peak_rss_mb": peaks.peak_rss_mb,
            "redis_peak_used_memory_mb": peaks.redis_peak_mb,
            "cpu_ms_per_chunk": {
                who: 1000 * used_s / ours.calls
                for who, used_s in {**cpu.used_s, "producer": ours.extra["producer_cpu_s"]}.items()
            },
            "redis_commands_per_chunk": {
                cmd: round(n / ours.calls, 1) for cmd, n in commands.most_common() if n > 0
            },
        }
        if trace is not None:
            ours.extra["timeline"] = trace.timeline()
        return ours


def bench_size(ids: int, args: argparse.Namespace, workdir: Path) -> dict:
    csv_path = write_maids_csv(workdir / f"maids-{ids}.csv", ids)
    procs = []
    try:
        redis_proc, redis_url = devstack.start_redis(workdir / f"redis-{ids}")
        sandbox, graph_url = devstack.start_sandbox(
            "--latency-ms",
            str(args.latency_ms),
            "--jitter-ms",
            str(args.jitter_ms),
            log=workdir / "sandbox.log",
        )
        procs += [redis_proc, sandbox]
        env = devstack.stack_env(redis_url, graph_url, **dict(kv.split("=", 1) for kv in args.set))
        workers = {
            "worker critical": devstack.start_worker(
                "critical",
                env,
                concurrency=args.critical_threads,
                name="critical",
                log=workdir / "critical.log",
            ),
            "worker standard": devstack.start_worker(
                "standard",
                env,
                concurrency=args.standard_procs,
                name="standard",
                log=workdir / "standard.log",
            ),
        }
        procs += workers.values()
        from celery import Celery

        pinger = Celery(broker=redis_url)  # a bare app on this size's Redis, only to ping
        devstack.wait_workers(pinger, ["critical", "standard"], procs=list(workers.values()))
        warm_up(env, workdir, graph_url)

        outcomes: list[Outcome] = []
        if ids <= SDK_MAX_IDS and not args.skip_sdk:
            outcomes.append(run_sdk(csv_path, new_audience(graph_url), graph_url))
        if not args.skip_lean:
            outcomes.append(run_lean(csv_path, new_audience(graph_url), graph_url))
        roots = {name: proc.pid for name, proc in workers.items()}
        wrap, spies = [], None
        if args.profile:  # the first run only: the one an operator's first upload sees
            spies = Recorders(args.profile, {"sandbox": sandbox.pid} | roots)
            wrap = [*record_args(args.profile / "producer.txt"), "--"]
        stack = Run(
            ids, csv_path, graph_url, redis_url, env, roots, sandbox.pid, redis_proc.pid, args.trace
        )
        outcomes.append(stack.ours(NEW_ACCOUNT, wrap))
        if spies:
            spies.stop()
            for path in sorted(args.profile.glob("*.txt")):
                print("\n".join(summary(path, outcomes[-1].calls)))
        # The same Redis, so the same ad account: the gate starts from what it learned above.
        outcomes.append(stack.ours(LEARNED_ACCOUNT))
        return {"ids": ids, "outcomes": [vars(o) | {"ids_per_s": o.ids_per_s} for o in outcomes]}
    finally:
        for proc in reversed(procs):
            devstack.stop(proc)
        csv_path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--big", action="store_true", help="add a 40,000,000-ID run")
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--jitter-ms", type=float, default=100)
    parser.add_argument(
        "--critical-threads",
        type=int,
        default=Settings().critical_concurrency,
        help="threads of the critical worker (default: the deployment's default)",
    )
    parser.add_argument("--standard-procs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-sdk", action="store_true")
    parser.add_argument("--skip-lean", action="store_true")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the workers and the producer, e.g. throttle_rate_per_s=1000",
    )
    parser.add_argument(
        "--trace", action="store_true", help="the gate's timeline of each audiencesync run"
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy every audiencesync process; collapsed stacks here"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([40_000_000] if args.big else [])
    workdir = Path(tempfile.mkdtemp(prefix="audiencesync-bench-"))
    where = machine()
    title = f"sandbox latency {args.latency_ms:.0f} ms + up to {args.jitter_ms:.0f} ms; {where}"
    print(f"benchmark: {title}")
    results = []
    try:
        for ids in sizes:
            results.append(bench_size(ids, args, workdir))
            print("\n".join(table(results[-1])), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    record = {
        "machine": where,
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "critical_threads": args.critical_threads,
        "results": results,
    }
    (RESULTS / "latest.json").write_text(json.dumps(record, indent=2, default=str))
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(record, indent=2, default=str))
    try:
        chart(results, RESULTS / "latest.png", title)
    except ImportError:  # matplotlib is optional: the table and JSON are the figures
        print(f"\nwrote {RESULTS / 'latest.json'} (no chart: matplotlib is not installed)")
    else:
        print(f"\nwrote {RESULTS / 'latest.json'} and {RESULTS / 'latest.png'}")


if __name__ == "__main__":
    main()
