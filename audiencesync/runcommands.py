"""The run commands: upload, resume, status. Every failure is one line that says what to do."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import orjson
import redis

from audiencesync.errors import ConfigError, RedisUnavailable
from audiencesync.runstore import RunStore, connect
from audiencesync.settings import Settings

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
    return RunStore(client, ttl_s=settings.run_ttl_s, lease_s=settings.lease_s)


def preflight(settings: Settings, audience_id: str) -> dict | None:
    """One cheap call before reading the source: a bad token or audience costs one call, not
    a run. An unreachable destination is left to the uploads' retries (and reported)."""
    from audiencesync.errors import PermanentGraphError, RetryableGraphError, TokenError
    from audiencesync.graph import GraphClient

    client = GraphClient(settings)
    try:
        return client.get_audience(audience_id)  # a mirror run compares its size
    except TokenError as exc:
        raise ConfigError(
            f"the access token was rejected ({exc}): set a valid AUDIENCESYNC_ACCESS_TOKEN"
        ) from None
    except PermanentGraphError as exc:
        raise ConfigError(
            f"audience {audience_id} cannot be used ({exc}): check --audience-id and that the "
            "token's user may manage it"
        ) from None
    except RetryableGraphError as exc:
        print(f"audiencesync: warning: {exc}; starting anyway, uploads will retry", file=sys.stderr)
        return None
    finally:
        client.close()


def cmd_upload(args: argparse.Namespace, settings: Settings) -> int:
    from producers.pipeline import RunRequest, create_run, produce
    from producers.sources import SourceSpec

    if not args.audience_id:
        raise ConfigError("--audience-id is required: the id of the Meta custom audience")
    store = connect_store(settings)
    if getattr(args, "resync", False) and args.mode != "mirror":
        raise ConfigError("--resync goes with --mode mirror: it replaces a mirrored audience")
    audience = preflight(settings, args.audience_id)
    path = os.path.abspath(args.source) if args.source else None
    spec = SourceSpec(path=path, column=args.column, query=args.query, table=args.table)
    source = spec.open(settings)
    request = RunRequest(
        args.audience_id,
        mode=args.mode,
        hash_ids=args.hash,
        source=spec,
        ad_account_id=settings.ad_account_id,
    )
    try:
        if args.mode == "mirror":
            return _upload_mirror(store, settings, request, source, args, audience)
        run_id = create_run(store, request, source)
        print(run_id, flush=True)
        return drive(store, run_id, args, lambda: produce(store, run_id, source, settings))
    finally:
        source.close()


def _upload_mirror(store: RunStore, settings: Settings, request, source, args, audience) -> int:
    from producers.mirror import MirrorRun
    from producers.pipeline import new_run_id

    run_id = new_run_id()
    with MirrorRun(
        store, settings, request, run_id, audience=audience, resync=getattr(args, "resync", False)
    ) as run:
        run.plan(source)  # reads the whole source first: the guard needs the whole difference
        print(run_id, flush=True)
        return drive(store, run_id, args, run.publish)


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
            store, args.run_id, args, lambda: resume_run(store, args.run_id, settings, source)
        )
    finally:
        if source is not None:
            source.close()


def drive(
    store: RunStore, run_id: str, args: argparse.Namespace, start: Callable[[], object]
) -> int:
    """Publish the run (`start`); with --wait, show progress, then print the report."""
    from audiencesync.display import ProgressBar, format_report

    if not args.wait:
        start()
        print(
            f"run {run_id} enqueued; follow it with: audiencesync status {run_id}",
            file=sys.stderr,
        )
        return EXIT_OK
    with ProgressBar(store, run_id):
        start()
        report = wait_for_report(store, run_id)
    print(orjson.dumps(report).decode() if args.json else format_report(report))
    return EXIT_OK if report["status"] == "completed" else EXIT_FAILED


def wait_for_report(
    store: RunStore, run_id: str, poll_s: float = 0.25, timeout_s: float | None = None
) -> dict:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    warned: list[str] = []
    next_look = 0.0
    while (report := store.report(run_id)) is None:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} has no report after {timeout_s}s")
        if time.monotonic() >= next_look:  # said once per queue while none is live, not more
            warned = warn_missing_workers(store, warned)
            next_look = time.monotonic() + store.lease_s / 6
        time.sleep(poll_s)
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
    from audiencesync.display import format_report, progress_line

    store = connect_store(settings)
    if not store.exists(args.run_id):
        raise ConfigError(f"no run {args.run_id} in this Redis: check the id and REDIS_URL")
    report = store.report(args.run_id)
    if report is None:
        from audiencesync.throttle.gate import Gate, account_key
        from audiencesync.throttle.summary import live_line, live_section

        meta = store.meta(args.run_id)
        account = account_key(meta)
        throttle = live_section(
            account, meta, Gate.from_settings(store.r, settings).snapshot(account)
        )
        if args.json:
            print(orjson.dumps({"run_id": args.run_id, **meta, "throttle": throttle}).decode())
        else:
            print(f"run {args.run_id}: {meta['status']} ({meta.get('mode', 'add')})")
            print(progress_line(meta, time.time()))
            print(live_line(throttle))
        if meta["status"] in ("running", "stalled"):
            warn_missing_workers(store, [])
        if meta["status"] != "running":
            idle_s = time.time() - float(meta.get("progress_at", 0))
            print(
                f"audiencesync: run {args.run_id} is {meta['status']}: no chunk staged or "
                f"finished for {idle_s:.0f}s; finish it with: audiencesync resume {args.run_id}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        return EXIT_OK
    print(orjson.dumps(report).decode() if args.json else format_report(report))
    return EXIT_OK if report["status"] == "completed" else EXIT_FAILED
