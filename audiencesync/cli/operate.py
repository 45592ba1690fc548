"""Operator commands on runs: `runs` (recent runs) and `cancel`."""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from audiencesync.errors import ConfigError
from audiencesync.settings import Settings

EXIT_OK, EXIT_FAILED = 0, 1


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    from audiencesync.cli.display import format_runs, run_row
    from audiencesync.cli.runs import connect_store

    store = connect_store(settings)
    now = time.time()
    rows = [
        run_row(run_id, meta, store.report(run_id), now)
        for run_id in store.recent(args.limit)
        if (meta := store.run(run_id)) is not None  # a run whose state expired is skipped
    ]
    if args.json:
        print("\n".join(orjson.dumps(row).decode() for row in rows))
    else:
        print(format_runs(rows))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from audiencesync.cli.runs import connect_store

    store = connect_store(settings)
    store.existing(args.run_id)
    if (report := store.report(args.run_id)) is not None:
        raise ConfigError(f"run {args.run_id} already finished: {report['status']}")
    store.cancel(args.run_id)
    print(
        f"run {args.run_id}: cancelling; chunks not yet sent are dropped. "
        f"Follow it with: audiencesync status {args.run_id}",
        file=sys.stderr,
    )
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="recent runs: id, audience, status, IDs, rate, duration")
    p.add_argument("--limit", type=int, default=20, help="how many of the latest runs")
    p.add_argument("--json", action="store_true", help="one JSON object per run")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("cancel", help="stop a run: chunks not yet sent are dropped")
    p.add_argument("run_id", help="the id `upload` printed")
    p.set_defaults(func=cmd_cancel)
