"""The long-running processes of a deployment: `worker`, `beat`, `flower`."""

from __future__ import annotations

import argparse
import logging
import sys

from audiencesync.errors import ConfigError
from audiencesync.settings import Settings

EXIT_OK = 0


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
        # The soft limit fails the chunk with its reason; the hard one is a backstop.
        argv += ["--soft-time-limit", str(settings.prepare_time_limit_s)]
        argv += ["--time-limit", str(settings.prepare_hard_limit_s)]
    logging.getLogger("audiencesync").setLevel(args.loglevel)  # throttle episodes are INFO
    if critical and settings.metrics_port:  # threads pool: this one process records them all
        from audiencesync.metrics import serve

        serve(settings.metrics_port)
    app.worker_main(argv)
    return EXIT_OK


def cmd_beat(args: argparse.Namespace, settings: Settings) -> int:
    from audiencesync.domain.audiences import load_audiences
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


def flower_auth(settings: Settings) -> str:
    """Flower's --basic-auth: `user:password` (or several, comma-separated). Anything else would
    start a Flower nobody can log in to."""
    if settings.flower_basic_auth is None:
        raise ConfigError(
            "set AUDIENCESYNC_FLOWER_BASIC_AUTH=user:password: Flower shows every "
            "task and worker, so it never runs open"
        )
    auth = settings.flower_basic_auth.get_secret_value()
    for pair in auth.split(","):
        user, colon, password = pair.partition(":")
        if not (user and colon and password):
            raise ConfigError(
                "AUDIENCESYNC_FLOWER_BASIC_AUTH must be user:password (several: "
                "user:password,user2:password2): without both, nobody could log in"
            )
    return auth


def cmd_flower(args: argparse.Namespace, settings: Settings) -> int:
    from workers.app import app

    auth = flower_auth(settings)
    app.start(["flower", f"--port={args.port}", f"--basic-auth={auth}", "--max_tasks=10000"])
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="start a worker for one queue")
    p.add_argument(
        "--queues",
        choices=["standard", "critical", "producer"],
        required=True,
        help="standard: prepare (processes); critical: uploads (threads); producer: "
        "scheduled runs (threads)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        help="processes or threads (default: AUDIENCESYNC_STANDARD_CONCURRENCY, "
        "_CRITICAL_CONCURRENCY or _PRODUCER_CONCURRENCY)",
    )
    p.add_argument("--name", help="worker name, unique per host (default: the queue name)")
    p.add_argument("--loglevel", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("beat", help="start the scheduler (exactly one per deployment)")
    p.add_argument("--audiences", help="declared audiences (default: AUDIENCESYNC_AUDIENCES_FILE)")
    p.add_argument("--schedule-file", default="celerybeat-schedule", help="beat's state file")
    p.add_argument("--loglevel", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    p.set_defaults(func=cmd_beat)

    p = sub.add_parser(
        "flower", help="start Flower (basic auth from AUDIENCESYNC_FLOWER_BASIC_AUTH=user:password)"
    )
    p.add_argument("--port", type=int, default=5555, help="where Flower listens")
    p.set_defaults(func=cmd_flower)
