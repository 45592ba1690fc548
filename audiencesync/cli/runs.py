"""The run commands: upload, resume, status. Every failure is one line that says what to do."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
import redis

from audiencesync.errors import ConfigError, RedisUnavailable
from audiencesync.settings import Settings
from audiencesync.store.locks import connect
from audiencesync.store.runs import RunStore

if TYPE_CHECKING:
    from producers.pipeline import RunRequest

EXIT_OK, EXIT_FAILED = 0, 1


def connect_store(settings: Settings) -> RunStore:
    try:  # fail fast when Redis is not there at all; once it answered, ride out restarts
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        where = redis.connection.parse_url(settings.redis_url)
        host = f"{where.get('host', '?')}:{where.get('port', 6379)}"
        raise RedisUnavailable(
            f"cannot reach Redis at {host} ({type(exc).__name__}): start it or set "
            "AUDIENCESYNC_REDIS_URL"
        ) from None
    client = connect(settings.redis_url, socket_connect_timeout=3, socket_timeout=30)
    return RunStore.from_settings(client, settings)


def require_token(settings: Settings) -> None:
    """An empty token is its own error (else: a vague "no answer from ..." from HTTP)."""
    from audiencesync.graph.destination import EMPTY_TOKEN

    if not settings.access_token.get_secret_value():
        raise ConfigError(EMPTY_TOKEN)


def preflight(settings: Settings, audience_id: str) -> dict | None:
    """Meta's answer about the audience, before reading the source (producers/preflight.py)."""
    from producers.preflight import read_audience

    require_token(settings)
    return read_audience(
        settings,
        audience_id,
        lambda line: print(f"audiencesync: warning: {line}", file=sys.stderr),
    )


def preflight_soon(settings: Settings, audience_id: str) -> Callable[[], dict | None]:
    """preflight() in a daemon thread, so Meta answers while the producer's modules load (a
    round trip of 1-2 s before the first upload otherwise). Call the result for the answer (or
    the error); a command that fails first exits without waiting for it."""
    outcome: list = []

    def ask() -> None:
        try:
            outcome.append(preflight(settings, audience_id))
        except BaseException as exc:  # re-raised in the command's thread
            outcome.append(exc)

    thread = threading.Thread(target=ask, name="preflight", daemon=True)
    thread.start()

    def answer() -> dict | None:
        thread.join()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    return answer


def cmd_upload(args: argparse.Namespace, settings: Settings) -> int:
    from producers.pipeline import RunRequest
    from producers.spec import SourceSpec

    if not args.audience_id:
        raise ConfigError("--audience-id is required: the id of the Meta custom audience")
    if getattr(args, "resync", False) and args.mode != "mirror":
        raise ConfigError("--resync goes with --mode mirror: it replaces a mirrored audience")
    spec = SourceSpec.given(
        args.source,
        column=args.column,
        query=args.query,
        table=args.table,
        delimiter=args.delimiter,
        no_header=args.no_header,
    )
    request = RunRequest(
        args.audience_id,
        mode=args.mode,
        hash_ids=args.hash,
        source=spec,
        ad_account_id=settings.ad_account_id,
    )
    return upload(
        settings,
        request,
        wait=args.wait,
        as_json=args.json,
        max_rejected_pct=args.max_rejected_pct,
        resync=getattr(args, "resync", False),
    )


def upload(
    settings: Settings,
    request: RunRequest,
    *,
    wait: bool,
    as_json: bool = False,
    max_rejected_pct: float | None = None,
    resync: bool = False,
) -> int:
    """Start a run (its id on stdout); with `wait`, show its progress and print its report."""
    answer = preflight_soon(settings, request.audience_id)
    from producers.pipeline import new_run_id
    from producers.start import planned_run

    store = connect_store(settings)
    audience = answer()
    if max_rejected_pct is not None:  # before the run exists: nothing is sent on failure
        from producers.validate import check_rejected

        check_rejected(request.source, settings, max_rejected_pct)
    run_id = new_run_id()
    with planned_run(store, settings, request, run_id, audience=audience, resync=resync) as publish:
        print(run_id, flush=True)
        return drive(store, run_id, publish, wait=wait, as_json=as_json)


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    from producers.resume import plan_resume, resume_run

    store = connect_store(settings)
    plan = plan_resume(store, args.run_id)
    if plan.status == "running":
        print(
            f"audiencesync: warning: run {args.run_id} is running; if its producer is alive, it "
            "stops at its next chunk and this one goes on",
            file=sys.stderr,
        )
    source = plan.spec.open(settings) if plan.read_source else None
    try:
        return drive(
            store,
            args.run_id,
            lambda: resume_run(store, args.run_id, settings, source),
            wait=args.wait,
            as_json=args.json,
        )
    finally:
        if source is not None:
            source.close()


def drive(
    store: RunStore, run_id: str, start: Callable[[], object], *, wait: bool, as_json: bool
) -> int:
    """Publish the run (`start`); with --wait, show progress, then print the report."""
    from audiencesync.cli.display import ProgressBar, format_report

    if not wait:
        start()
        print(
            f"run {run_id} enqueued; follow it with: audiencesync status {run_id}",
            file=sys.stderr,
        )
        return EXIT_OK
    with ProgressBar(store, run_id):
        start()
        report = wait_for_report(store, run_id)
    print(orjson.dumps(report).decode() if as_json else format_report(report))
    return EXIT_OK if report["status"] == "completed" else EXIT_FAILED


def wait_for_report(
    store: RunStore, run_id: str, poll_s: float = 1.0, timeout_s: float | None = None
) -> dict:
    """The run's report, the moment finalize saves it; meanwhile, every poll_s, the deadline
    and the workers the run needs are looked at."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    warned: list[str] = []
    next_look = 0.0
    while (report := store.report(run_id)) is None:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} has no report after {timeout_s}s")
        if time.monotonic() >= next_look:  # said once per queue while none is live, not more
            warned = warn_missing_workers(store, warned)
            next_look = time.monotonic() + store.lease_s / 6
        store.wait_finished(run_id, poll_s)
    return report


def warn_missing_workers(store: RunStore, warned: list[str]) -> list[str]:
    """Say which queues the run needs have no live worker (on stderr); returns them."""
    from audiencesync.recovery.liveness import missing_message, missing_queues

    missing = missing_queues(store.r, time.time(), store.lease_s / 2)
    for queue in missing:
        if queue not in warned:
            print(f"\naudiencesync: {missing_message(queue)}", file=sys.stderr, flush=True)
    return missing


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from audiencesync.cli.display import format_report, progress_line

    store = connect_store(settings)
    meta = store.existing(args.run_id)
    report = store.report(args.run_id)
    if report is None:
        from audiencesync.store.meta import Status
        from audiencesync.throttle.gate import Gate, account_key
        from audiencesync.throttle.summary import live_line, live_section

        account = account_key(meta.ad_account_id, meta.audience_id)
        throttle = live_section(
            account, meta, Gate.from_settings(store.r, settings).snapshot(account)
        )
        if args.json:
            print(orjson.dumps({"run_id": args.run_id, **meta.raw, "throttle": throttle}).decode())
        else:
            print(f"run {args.run_id}: {meta.status} ({meta.mode})")
            print(progress_line(meta, time.time()))
            print(live_line(throttle))
        if meta.status in (Status.RUNNING, Status.STALLED):
            warn_missing_workers(store, [])
        if meta.status != Status.RUNNING:
            idle_s = time.time() - meta.progress_at
            print(
                f"audiencesync: run {args.run_id} is {meta.status}: no chunk staged or "
                f"finished for {idle_s:.0f}s; finish it with: audiencesync resume {args.run_id}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        return EXIT_OK
    print(orjson.dumps(report).decode() if args.json else format_report(report))
    return EXIT_OK if report["status"] == "completed" else EXIT_FAILED
