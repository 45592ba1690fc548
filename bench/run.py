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
from pathlib import Path

import httpx

from audiencesync import devstack
from bench.contenders import Outcome, run_audiencesync, run_lean, run_sdk
from bench.data import write_maids_csv
from bench.measure import CpuMeter, PeakSampler, redis_commands
from bench.profile import Recorders, record_args, summary

RESULTS = Path(__file__).parent / "results"
SDK_MAX_IDS = 5_000_000  # beyond this the sequential SDK loop takes hours


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


def new_audience(graph_url: str) -> str:
    httpx.post(f"{graph_url}/_sandbox/reset").raise_for_status()  # frees the last run's members
    answer = httpx.post(f"{graph_url}/_sandbox/audiences", json={"ad_account_id": "1001"})
    return answer.json()["id"]


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

        outcomes: list[Outcome] = []
        if ids <= SDK_MAX_IDS and not args.skip_sdk:
            outcomes.append(run_sdk(csv_path, new_audience(graph_url), graph_url))
        if not args.skip_lean:
            outcomes.append(run_lean(csv_path, new_audience(graph_url), graph_url))
        roots = {name: proc.pid for name, proc in workers.items()}
        audience_id, wrap, spies = new_audience(graph_url), [], None
        if args.profile:
            spies = Recorders(args.profile, {"sandbox": sandbox.pid} | roots)
            wrap = [*record_args(args.profile / "producer.txt"), "--"]
        metered = roots | {"sandbox": sandbox.pid, "redis-server": redis_proc.pid}
        sampled = roots | {"sandbox": sandbox.pid}  # the sandbox holds every member, as Meta does
        commands_before = redis_commands(redis_url)
        with PeakSampler(sampled, redis_url) as peaks, CpuMeter(metered) as cpu:
            outcomes.append(run_audiencesync(csv_path, audience_id, env, wrap=wrap))
        commands = Counter(redis_commands(redis_url))
        commands.subtract(commands_before)
        if spies:
            spies.stop()
            for path in sorted(args.profile.glob("*.txt")):
                print("\n".join(summary(path, outcomes[-1].calls)))
        members = httpx.get(f"{graph_url}/_sandbox/stats").json()["audiences"]
        ours = outcomes[-1]
        assert ours.extra["report"]["status"] == "completed", ours.extra["report"]
        assert sum(a["members"] for a in members.values()) == ids, "sandbox lost IDs"
        ours.extra |= {
            "peak_rss_mb": peaks.peak_rss_mb,
            "redis_peak_used_memory_mb": peaks.redis_peak_mb,
            "cpu_ms_per_chunk": {
                name: 1000 * used_s / ours.calls
                for name, used_s in {**cpu.used_s, "producer": ours.extra["producer_cpu_s"]}.items()
            },
            "redis_commands_per_chunk": {
                name: round(n / ours.calls, 1) for name, n in commands.most_common() if n > 0
            },
        }
        return {"ids": ids, "outcomes": [vars(o) | {"ids_per_s": o.ids_per_s} for o in outcomes]}
    finally:
        for proc in reversed(procs):
            devstack.stop(proc)
        csv_path.unlink(missing_ok=True)


def table(size_result: dict) -> list[str]:
    rows = {o["name"]: o for o in size_result["outcomes"]}
    sdk = rows.get("official SDK loop")
    lean = rows.get("lean asyncio uploader")
    lines = [
        f"\n{size_result['ids']:,} IDs",
        f"  {'contender':<24}{'wall s':>9}{'IDs/s':>12}{'x SDK':>8}{'of lean':>9}",
    ]
    for o in size_result["outcomes"]:
        x_sdk = f"{o['ids_per_s'] / sdk['ids_per_s']:.1f}" if sdk else "-"
        lines.append(
            f"  {o['name']:<24}{o['wall_s']:>9.1f}{o['ids_per_s']:>12,.0f}{x_sdk:>8}"
            + (f"{o['ids_per_s'] / lean['ids_per_s']:>9.2f}" if lean else f"{'-':>9}")
        )
    ours = rows["audiencesync"]["extra"]
    rss = ", ".join(f"{k} {v:.0f} MB" for k, v in ours["peak_rss_mb"].items())
    lines.append(
        f"  peak RSS: producer {ours['producer_peak_rss_mb']:.0f} MB, {rss}; "
        f"Redis peak used_memory {ours['redis_peak_used_memory_mb']:.1f} MB"
    )
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in ours["cpu_ms_per_chunk"].items())
    lines.append(f"  CPU ms per 10,000-ID call: {cpu}")
    commands = ours["redis_commands_per_chunk"]
    top = ", ".join(f"{name} {n}" for name, n in list(commands.items())[:8])
    lines.append(f"  Redis commands per call: {sum(commands.values()):.0f} ({top}, ...)")
    return lines


def chart(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["official SDK loop", "lean asyncio uploader", "audiencesync"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(results)
    for i, res in enumerate(results):
        by_name = {o["name"]: o["ids_per_s"] for o in res["outcomes"]}
        xs = [n + i * width for n in range(len(names))]
        ax.bar(xs, [by_name.get(n, 0) for n in names], width, label=f"{res['ids']:,} IDs")
    ax.set_xticks([n + width * (len(results) - 1) / 2 for n in range(len(names))], names)
    ax.set_ylabel("IDs per second (higher is better)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--big", action="store_true", help="add a 40,000,000-ID run")
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--jitter-ms", type=float, default=100)
    parser.add_argument("--critical-threads", type=int, default=64)
    parser.add_argument("--standard-procs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-sdk", action="store_true")
    parser.add_argument("--skip-lean", action="store_true")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the workers and the producer, e.g. throttle_rate_start_per_s=1000",
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
    chart(results, RESULTS / "latest.png", title)
    print(f"\nwrote {RESULTS / 'latest.json'} and {RESULTS / 'latest.png'}")


if __name__ == "__main__":
    main()
