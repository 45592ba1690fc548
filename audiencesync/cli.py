"""The `audiencesync` command. Every failure ends in one line that says what to do, and exit 1."""

from __future__ import annotations

import argparse
import logging
import sys

from audiencesync import logs
from audiencesync.errors import AudienceSyncError, ConfigError
from audiencesync.modes import MODES
from audiencesync.operate import add_commands as add_operator_commands
from audiencesync.runcommands import EXIT_FAILED, EXIT_OK, cmd_resume, cmd_status, cmd_upload
from audiencesync.settings import Settings, get_settings


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.app import app

    critical = args.queues == "critical"
    threads = args.queues in ("critical", "producer")
    default_concurrency = {
        "critical": settings.critical_concurrency,
        "standard": settings.standard_concurrency,
        "producer": settings.producer_concurrency,
    }
    concurrency = args.concurrency or default_concurrency[args.queues]
    argv = [
        "worker",
        "--queues",
        args.queues,
        "--concurrency",
        str(concurrency),
        # Uploads and producers wait on I/O: threads. Normalising and hashing burn CPU: processes.
        "--pool",
        "threads" if threads else "prefork",
        "--hostname",
        f"{args.name or args.queues}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        args.loglevel,
    ]
    if not threads:
        argv += ["--time-limit", str(settings.prepare_time_limit_s)]
    logging.getLogger("audiencesync").setLevel(args.loglevel)  # throttle episodes are INFO
    if critical and settings.metrics_port:  # threads pool: this one process records them all
        from audiencesync.metrics import serve

        serve(settings.metrics_port)
    app.worker_main(argv)
    return EXIT_OK


def cmd_beat(args: argparse.Namespace, settings: Settings) -> int:
    from audiencesync.audiences import load_audiences
    from workers.app import app
    from workers.schedule import audience_entries

    path = args.audiences or settings.audiences_file
    if path:
        if args.audiences and settings.audiences_file and args.audiences != settings.audiences_file:
            print(
                "audiencesync: warning: producer workers read AUDIENCESYNC_AUDIENCES_FILE "
                f"({settings.audiences_file}), not {args.audiences}",
                file=sys.stderr,
            )
        entries = audience_entries(load_audiences(path))
        app.conf.beat_schedule = {**(app.conf.beat_schedule or {}), **entries}
    else:
        print(
            "audiencesync: no declared audiences (--audiences or AUDIENCESYNC_AUDIENCES_FILE)",
            file=sys.stderr,
        )
    argv = ["beat", "--loglevel", args.loglevel, "--schedule", args.schedule_file]
    app.start(argv)
    return EXIT_OK


def cmd_flower(args: argparse.Namespace, settings: Settings) -> int:
    from workers.app import app

    if settings.flower_basic_auth is None:
        raise ConfigError(
            "set AUDIENCESYNC_FLOWER_BASIC_AUTH=user:password: Flower shows every "
            "task and worker, so it never runs open"
        )
    auth = settings.flower_basic_auth.get_secret_value()
    app.start(["flower", f"--port={args.port}", f"--basic-auth={auth}", "--max_tasks=10000"])
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from audiencesync.sandbox import SandboxConfig, serve

    serve(
        SandboxConfig(
            host=args.host,
            port=args.port,
            token=args.token,
            app_secret=args.app_secret,
            latency_ms=args.latency_ms,
            jitter_ms=args.jitter_ms,
            latency_per_inflight_ms=args.latency_per_inflight_ms,
            rate_per_s=args.rate,
            penalty_s=args.penalty_s,
            budget_calls=args.budget_calls,
            budget_window_s=args.budget_window_s,
            score_max=args.score_max,
            score_decay_s=args.score_decay_s,
            write_points=args.write_points,
            block_s=args.block_s,
            usage_header_after_calls=args.usage_header_after_calls,
            replace_window_s=args.replace_window_s,
            transient_rate=args.transient_rate,
            fail_batch_seq=args.fail_batch_seq,
            seed=args.seed,
        )
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from audiencesync.demo import run_demo

    return run_demo(ids=args.ids, latency_ms=args.latency_ms)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audiencesync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("worker", help="start a worker for one queue")
    p.add_argument("--queues", choices=["standard", "critical", "producer"], required=True)
    p.add_argument("--concurrency", type=int)
    p.add_argument("--name", help="worker name (default: the queue name)")
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("beat", help="start the scheduler (exactly one per deployment)")
    p.add_argument("--audiences", help="declared audiences (default: AUDIENCESYNC_AUDIENCES_FILE)")
    p.add_argument("--schedule-file", default="celerybeat-schedule", help="beat's state file")
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(func=cmd_beat)

    p = sub.add_parser("flower", help="start Flower (basic auth required)")
    p.add_argument("--port", type=int, default=5555)
    p.set_defaults(func=cmd_flower)

    p = sub.add_parser("upload", help="send an audience (file or Snowflake) to Meta")
    p.add_argument("source", nargs="?", help="a .csv, .csv.gz or .parquet file")
    p.add_argument("--audience-id", required=True)
    p.add_argument("--column", help="column holding the IDs (default: the first)")
    p.add_argument("--query", help="Snowflake query whose rows are the IDs")
    p.add_argument("--table", help="Snowflake table holding the IDs")
    p.add_argument("--hash", action="store_true", help="send SHA-256 of each normalised ID")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="add",
        help="add the IDs (default), remove them, replace the audience with them, or mirror: "
        "send only the additions and removals since the last completed mirror run",
    )
    p.add_argument("--wait", action="store_true", help="show progress and wait for the report")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("status", help="progress or report of a run")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("resume", help="finish an interrupted run without resending what is done")
    p.add_argument("run_id")
    p.add_argument("--wait", action="store_true", help="show progress and wait for the report")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("sandbox", help="run the local fake Graph API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default="sandbox-token")
    p.add_argument("--app-secret")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument(
        "--latency-per-inflight-ms",
        type=float,
        default=0.0,
        help="extra latency per other Graph call in flight (a destination slowed by load)",
    )
    p.add_argument("--rate", type=float, help="one-second bucket: calls/s per ad account")
    p.add_argument("--penalty-s", type=float, default=2.0)
    p.add_argument(
        "--budget-calls", type=int, help="rolling window: calls per account, refused counted"
    )
    p.add_argument("--budget-window-s", type=float, default=3600.0)
    p.add_argument("--score-max", type=float, help="score model: points per account")
    p.add_argument("--score-decay-s", type=float, default=300.0, help="a full score decays in this")
    p.add_argument("--write-points", type=float, default=3.0)
    p.add_argument("--block-s", type=float, default=60.0, help="block once over the score")
    p.add_argument("--usage-header-after-calls", type=int, default=3)
    p.add_argument("--replace-window-s", type=float, default=5400.0, help="replace session window")
    p.add_argument("--transient-rate", type=float, default=0.0)
    p.add_argument(
        "--fail-batch-seq",
        type=int,
        help="refuse every batch with this batch_seq (not a last one) with error 100 (permanent)",
    )
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("demo", help="1M generated IDs through a private local stack")
    p.add_argument("--ids", type=int, default=1_000_000)
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.set_defaults(func=cmd_demo)
    add_operator_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
        logs.configure(json_lines=settings.log_json)
        return args.func(args, settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "AUDIENCESYNC_" + str(err["loc"][0]).upper() if err["loc"] else "a setting"
        print(f"audiencesync: error: {name}: {err['msg']}", file=sys.stderr)
        return EXIT_FAILED
    except AudienceSyncError as exc:
        print(f"audiencesync: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(
            "audiencesync: interrupted; enqueued chunks go on in the workers, and "
            "`audiencesync resume RUN_ID` reads the rest of the source",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
