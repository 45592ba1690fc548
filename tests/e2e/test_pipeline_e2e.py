"""Source -> chunks -> prepare -> upload -> chord finalize, with real processes throughout."""

from __future__ import annotations

import time
from datetime import datetime

from e2e_helpers import assert_exact, dirty_rows, expected, run_upload, write_csv

from audiencesync.settings import Settings


def test_dirty_csv_lands_exactly(stack, tmp_path):
    from producers.spec import open_source

    rows = dirty_rows(200_000)
    write_csv(tmp_path / "a.csv", rows)
    want = expected(rows)
    audience = stack.new_audience()
    source = open_source(str(tmp_path / "a.csv"), column="maid", settings=Settings())
    report = run_upload(stack, source, audience)

    assert report["status"] == "completed", report
    assert stack.members(audience) == want["members"]
    assert report["ids_read"] == 200_000
    assert report["ids_uploaded"] == want["uploaded"]
    assert report["duplicates"] == want["duplicates"]
    assert sum(report["ids_rejected"].values()) == want["rejected"]
    assert report["unaccounted"] == 0
    calls = stack.calls(audience)
    assert max(c["entries"] for c in calls) <= 10_000
    assert report["requests"] == len(calls)
    # Every upload call but the closing one carried new entries: the sandbox saw what we counted.
    assert sum(c["entries"] for c in calls) == report["ids_uploaded"] + 1
    assert report["session_closed"] and calls[-1]["last_batch_flag"] is True
    # The run's time covers its closing call, as the user's wait does. The sandbox's clock is
    # CLOCK_MONOTONIC, one clock for every process on this host: moved onto the wall clock here.
    wall_minus_monotonic_s = time.time() - time.monotonic()
    close_answered_at = calls[-1]["answered_s"] + wall_minus_monotonic_s
    finished_at = datetime.fromisoformat(report["finished_at"]).timestamp()
    assert finished_at >= close_answered_at - 0.002  # finished_at is in whole milliseconds


def test_parquet_lands_exactly(stack, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from producers.spec import open_source

    rows = dirty_rows(60_000, seed=11)
    values = [None if r == "" else r for r in rows]  # blanks as real NULLs
    pq.write_table(
        pa.table({"n": range(len(rows)), "maid": values}),
        tmp_path / "a.parquet",
        row_group_size=7_000,
    )
    audience = stack.new_audience()
    source = open_source(str(tmp_path / "a.parquet"), column="maid", settings=Settings())
    assert source.estimated_ids == len(rows)
    assert_exact(stack, audience, run_upload(stack, source, audience), rows)


def test_snowflake_query_lands_exactly(stack, fakesnow_kwargs):
    import snowflake.connector

    from producers.spec import open_source

    rows = dirty_rows(40_000, seed=12)
    kw = fakesnow_kwargs
    conn = snowflake.connector.connect(**kw)
    cur = conn.cursor()
    cur.execute("create database e2e")
    cur.execute("create schema e2e.s")
    cur.execute("create table e2e.s.audience (n int, maid varchar)")
    cur.executemany("insert into e2e.s.audience values (%s, %s)", list(enumerate(rows)))
    conn.close()
    settings = Settings(
        snowflake_account=kw["account"],
        snowflake_user=kw["user"],
        snowflake_password=kw["password"],
        snowflake_host=kw["host"],
        snowflake_port=kw["port"],
        snowflake_protocol=kw["protocol"],
        snowflake_database="E2E",
        snowflake_schema="S",
    )
    audience = stack.new_audience()
    source = open_source(None, query="SELECT maid FROM audience ORDER BY n", settings=settings)
    assert_exact(stack, audience, run_upload(stack, source, audience), rows)


def test_backpressure_bounds_staged_chunks(stack, sandbox_knobs, tmp_path):
    """An audience 20x the staging window flows through; staged data never exceeds the window."""
    import threading

    import redis

    from producers.spec import open_source

    window, chunk = 4, 1_000
    rows = dirty_rows(20 * window * chunk, seed=13)
    write_csv(tmp_path / "a.csv", rows)
    r = redis.Redis.from_url(stack.redis_url)
    peaks = {"keys": 0, "bytes": 0, "inflight": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            keys = [
                k for k in r.scan_iter("as:run:*", count=1000) if b":raw:" in k or b":prep:" in k
            ]
            staged_bytes = sum(r.strlen(k) for k in keys)
            peaks["keys"] = max(peaks["keys"], len(keys))
            peaks["bytes"] = max(peaks["bytes"], staged_bytes)
            inflight = sum(r.hlen(k) for k in r.scan_iter("as:run:*:inflight"))
            peaks["inflight"] = max(peaks["inflight"], inflight)

    audience = stack.new_audience()
    sandbox_knobs(latency_ms=30)  # uploads slower than reading: the window fills and holds
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        source = open_source(str(tmp_path / "a.csv"), column="maid", settings=Settings())
        report = run_upload(stack, source, audience, chunk_size=chunk, staging_window_chunks=window)
    finally:
        stop.set()
        sampler.join()
    assert report["chunks"] == 80
    want = expected(rows, chunk_size=chunk)
    assert report["ids_uploaded"] == want["uploaded"]
    assert stack.members(audience) == want["members"]
    assert peaks["inflight"] == window  # the producer was held back, never let past it
    # A chunk is staged raw, then prepared: at most `window` chunks hold at most 2 keys each.
    assert 0 < peaks["keys"] <= 2 * window
    max_chunk_bytes = chunk * (256 + 4)  # values are cut to 256 chars by the sources
    assert peaks["bytes"] <= window * max_chunk_bytes
