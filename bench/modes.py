"""Benchmark: the same IDs added, then replacing an audience, side by side against the sandbox.

    python -m bench.modes [--ids 2000000] [--rounds 2] [--out bench/results/modes.json]

Calls take 1.5 s + up to 0.4 s (as Meta's upload calls did, measured); one standard and one
critical worker, default settings. A replace sends batch 1 alone (Meta opens its session on it),
then the rest in parallel through the throttle gate like an add, and closes the session last:
the target is at most 1.3x an add's time. Rounds go add, replace, replace, add, ... (drift
cancels), each on a new audience, so each starts with a new throttle state, as a first run does;
a first add, not counted, warms the stack up (the file in the page cache, the workers' pools).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import orjson

from audiencesync.cli import devstack
from audiencesync.graph import GraphClient
from audiencesync.settings import Settings
from bench.data import write_maids_csv
from bench.run import machine

KNOBS = ("--latency-ms", "1500", "--jitter-ms", "400")
TARGET_RATIO = 1.3  # a replace takes at most this many times an add of the same IDs


def order(rounds: int) -> list[str]:
    """add, replace, replace, add, ...: each mode as often first as second."""
    pairs = [("add", "replace"), ("replace", "add")]
    return [mode for r in range(rounds) for mode in pairs[r % 2]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ids", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="bench/results/modes.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-modes-") as tmp:
        work = Path(tmp)
        source = write_maids_csv(work / "ids.csv", args.ids)
        with devstack.private_stack(work / "stack", *KNOBS) as stack:
            settings = Settings(graph_url=stack.graph_url, access_token=devstack.SANDBOX_TOKEN)
            client = GraphClient(settings)
            modes = ["warm-up", *order(args.rounds)]
            try:
                audiences = [client.create_audience("1001", f"bench-{n}") for n in modes]
            finally:
                client.close()
            for n, mode in enumerate(modes):
                report = stack.upload(source, audiences[n], mode=mode.replace("warm-up", "add"))
                row = {
                    "mode": mode,
                    "status": report["status"],
                    "ids": report["ids_uploaded"],
                    "requests": report["requests"],
                    "duration_s": report["duration_s"],
                    "ids_per_s": report["ids_per_s"],
                }
                if mode == "replace":
                    row["by_add"] = report["replace"]["by_add"]  # 0: no cutover
                rows.append(row)
                print(orjson.dumps(row).decode(), flush=True)
    median = {
        mode: statistics.median(r["duration_s"] for r in rows if r["mode"] == mode)
        for mode in ("add", "replace")
    }
    ratio = round(median["replace"] / median["add"], 3)
    print(f"median add {median['add']:.1f} s, replace {median['replace']:.1f} s: {ratio}x")
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "sandbox": " ".join(KNOBS),
        "median_duration_s": median,
        "replace_over_add": ratio,
        "target_ratio": TARGET_RATIO,
        "rows": rows,
    }
    Path(args.out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
