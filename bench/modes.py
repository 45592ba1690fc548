"""Benchmark: the same IDs added, then replacing the audience, against the sandbox.

    python -m bench.modes [--ids 200000] [--out bench/results/modes.json]

Calls take 200 ms + up to 100 ms (as in bench.run); one standard and one critical worker. A
replace goes one batch at a time (Meta's rule), so its figure is bounded by the call latency,
whatever the workers; add spreads its calls over the workers, under the throttle gate.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import orjson

from audiencesync.cli import devstack
from audiencesync.graph import GraphClient
from audiencesync.settings import Settings
from bench.data import write_maids_csv

KNOBS = ("--latency-ms", "200", "--jitter-ms", "100")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ids", type=int, default=200_000)
    parser.add_argument("--out", default="bench/results/modes.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-modes-") as tmp:
        work = Path(tmp)
        source = write_maids_csv(work / "ids.csv", args.ids)
        with devstack.private_stack(work / "stack", *KNOBS) as stack:
            settings = Settings(graph_url=stack.graph_url, access_token=devstack.SANDBOX_TOKEN)
            client = GraphClient(settings)
            audience = client.create_audience("1001", "bench-modes")
            client.close()
            for mode in ("add", "replace"):
                report = stack.upload(source, audience, mode=mode)
                rows.append(
                    {
                        "mode": mode,
                        "status": report["status"],
                        "ids": report["ids_uploaded"],
                        "requests": report["requests"],
                        "duration_s": report["duration_s"],
                        "ids_per_s": report["ids_per_s"],
                    }
                )
                print(orjson.dumps(rows[-1]).decode(), flush=True)
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "sandbox": " ".join(KNOBS),
        "rows": rows,
    }
    Path(args.out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
