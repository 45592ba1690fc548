"""Two mirror runs of one audience against the sandbox: peak memory and what each sends.

python -m bench.mirror                   # 5M IDs, then the same less 5 % plus 5 % new ones
python -m bench.mirror --ids 1000000 --churn 0.1 --latency-ms 200

A fresh redis-server, sandbox and workers (one critical process, one standard process with a
child per core); the producer is the `upload --mode mirror` command. Writes
bench/results/mirror.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import httpx

from audiencesync.cli import devstack
from bench.contenders import run_audiencesync
from bench.data import BLOCK_IDS, maid_lines, write_maids_csv
from bench.measure import PeakSampler
from bench.run import RESULTS, machine, new_audience


def churned_csv(first: Path, path: Path, churn: float) -> tuple[Path, int, int]:
    """The first CSV less every (1/churn)-th ID, plus as many new ones; (path, left, joined)."""
    every = round(1 / churn)
    left = 0
    with open(first) as src, open(path, "w") as out:
        out.write(next(src))  # the header
        for n, line in enumerate(src):
            if n % every == every - 1:
                left += 1
            else:
                out.write(line)
        for start in range(0, left, BLOCK_IDS):
            out.writelines(maid_lines(min(BLOCK_IDS, left - start)))
    return path, left, left


def one_run(csv_path: Path, audience: str, env: dict, workers: dict, graph_url: str) -> dict:
    before = httpx.get(f"{graph_url}/_sandbox/stats").json()
    roots = {name: proc.pid for name, proc in workers.items()}
    with PeakSampler(roots, env["AUDIENCESYNC_REDIS_URL"]) as peaks:
        outcome = run_audiencesync(csv_path, audience, env, "--mode", "mirror")
    after = httpx.get(f"{graph_url}/_sandbox/stats").json()
    report = outcome.extra["report"]
    assert report["status"] == "completed", report
    return {
        "wall_s": round(outcome.wall_s, 1),
        "added": report["added"],
        "removed": report["removed"],
        "unchanged": report["unchanged"],
        "calls": after["upload_calls"] - before["upload_calls"],
        "entries": after["entries_received"] - before["entries_received"],
        "members": after["audiences"][audience]["members"],
        "peak_rss_mb": {
            "producer": round(outcome.extra["producer_peak_rss_mb"]),
            **{name: round(mb) for name, mb in peaks.peak_rss_mb.items()},
        },
        "redis_peak_used_memory_mb": round(peaks.redis_peak_mb, 1),
    }


def bench(args: argparse.Namespace, workdir: Path) -> list[dict]:
    first = write_maids_csv(workdir / "first.csv", args.ids)
    second, left, joined = churned_csv(first, workdir / "second.csv", args.churn)
    procs = []
    try:
        redis_proc, redis_url = devstack.start_redis(workdir / "redis")
        sandbox, graph_url = devstack.start_sandbox(
            "--latency-ms", str(args.latency_ms), "--jitter-ms", str(args.jitter_ms)
        )
        procs += [redis_proc, sandbox]
        env = devstack.stack_env(redis_url, graph_url)
        env["AUDIENCESYNC_STATE_DIR"] = str(workdir / "state")
        workers = {
            f"worker {queue}": devstack.start_worker(
                queue, env, concurrency=n, name=queue, log=workdir / f"{queue}.log"
            )
            for queue, n in (("critical", 64), ("standard", os.cpu_count() or 2))
        }
        procs += workers.values()
        from celery import Celery

        names, procs_up = ["critical", "standard"], list(workers.values())
        devstack.wait_workers(Celery(broker=redis_url), names, procs=procs_up)
        audience = new_audience(graph_url)
        runs = [one_run(first, audience, env, workers, graph_url)]
        runs.append(one_run(second, audience, env, workers, graph_url))
        assert (runs[1]["added"], runs[1]["removed"]) == (joined, left), runs[1]
        assert runs[1]["members"] == args.ids, "the audience is not the second source's set"
        return runs
    finally:
        for proc in reversed(procs):
            devstack.stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ids", type=int, default=5_000_000)
    parser.add_argument("--churn", type=float, default=0.05, help="share removed, and added")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--jitter-ms", type=float, default=25)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="audiencesync-mirror-"))
    try:
        runs = bench(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for n, run in enumerate(runs, start=1):
        rss = ", ".join(f"{k} {v} MB" for k, v in run["peak_rss_mb"].items())
        print(
            f"run {n}: {run['wall_s']} s; added {run['added']:,}, removed {run['removed']:,}, "
            f"unchanged {run['unchanged']:,}; {run['calls']:,} calls, {run['entries']:,} entries; "
            f"peak RSS {rss}; Redis {run['redis_peak_used_memory_mb']} MB"
        )
    RESULTS.mkdir(exist_ok=True)
    record = {"machine": machine(), **vars(args), "runs": runs}
    (RESULTS / "mirror.json").write_text(json.dumps(record, indent=2))
    print(f"wrote {RESULTS / 'mirror.json'}")


if __name__ == "__main__":
    main()
