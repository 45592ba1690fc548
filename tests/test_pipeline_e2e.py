"""Source -> chunks -> prepare -> upload -> chord finalize, with real processes throughout."""

from __future__ import annotations

import csv

import pytest
from e2e_helpers import dirty_rows, expected

from audiencesync.runstore import RunStore
from audiencesync.settings import Settings


def run_upload(stack, source, audience_id: str, **settings_kw) -> dict:
    import redis

    from audiencesync.cli import wait_for_report
    from producers.pipeline import RunRequest, create_run, produce

    settings = Settings(redis_url=stack.redis_url, **settings_kw)
    store = RunStore(redis.Redis.from_url(stack.redis_url))
    run_id = create_run(store, RunRequest(audience_id), source)
    produce(store, run_id, source, settings)
    return wait_for_report(store, run_id)


def write_csv(path, rows, header="maid"):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", header])
        w.writerows([i, r] for i, r in enumerate(rows))


@pytest.mark.slow
def test_dirty_csv_lands_exactly(stack, tmp_path):
    from producers.sources import open_source

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
