"""Mirror mode through the command a user runs: real workers, the sandbox over HTTP.

The workers get no state directory: only the producer (the command) reads and writes snapshots.
"""

from __future__ import annotations

from e2e_helpers import ZERO, maids, write_csv
from run_helpers import mirror, report_of


def sent(calls: list[dict], method: str) -> tuple[int, int]:
    """(calls, entries) of one method, the sessions' closing batches left out."""
    batches = [c for c in calls if c["method"] == method and not c["last_batch_flag"]]
    return len(batches), sum(c["entries"] for c in batches)


def test_two_mirror_runs_leave_exactly_the_source_and_the_second_sends_only_the_difference(
    stack, tmp_path
):
    audience = stack.new_audience()
    first = maids(2_500, seed=81)
    junk = ["", "not-an-id", ZERO]
    rows = [*first, *junk, first[0].upper(), f" {first[1]} "]  # 2 duplicates after normalising
    report = report_of(mirror(stack, tmp_path, audience, rows))
    assert stack.members(audience) == set(first)
    assert (report["added"], report["removed"], report["unchanged"]) == (2_500, 0, 0)
    assert report["ids_read"] == len(rows) and report["duplicates"] == 2
    assert sum(report["ids_rejected"].values()) == 3 and report["unaccounted"] == 0
    assert report["session_closed"]
    before = len(stack.calls(audience))

    newcomers = maids(700, seed=82)
    second = [*first[600:], *newcomers]  # 600 leave, 1,900 stay, 700 join
    report = report_of(mirror(stack, tmp_path, audience, second[::-1]))
    assert stack.members(audience) == set(second)
    assert (report["added"], report["removed"], report["unchanged"]) == (700, 600, 1_900)
    assert report["status"] == "completed" and report["unaccounted"] == 0
    calls = stack.calls(audience)[before:]
    assert sent(calls, "POST") == (1, 700)  # one chunk of additions (chunks of 1,000)
    assert sent(calls, "DELETE") == (1, 600)  # one chunk of removals
    assert [c["last_batch_flag"] for c in calls].count(True) == 2  # each session closed once
    assert report["requests"] == len(calls) == 4

    done = mirror(stack, tmp_path, audience, second)  # nothing changed
    report = report_of(done)
    assert (report["added"], report["removed"], report["unchanged"]) == (0, 0, 2_600)
    assert "chunks" not in done.stderr  # no 0/0 progress bar left behind
    assert report["status"] == "completed" and len(stack.calls(audience)) == before + 4


def test_a_mirror_run_that_would_leave_under_100_people_is_refused_before_any_call(stack, tmp_path):
    audience = stack.new_audience()
    everyone = maids(150, seed=83)
    assert report_of(mirror(stack, tmp_path, audience, everyone))["added"] == 150
    calls = len(stack.calls(audience))
    done = mirror(stack, tmp_path, audience, everyone[:60])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "audiencesync: error: mirror run refused: it would remove 90 IDs and leave the audience "
        "with 60 people, and Meta refuses to go under 100; check the source (an empty or "
        "truncated export?), or remove the audience's people another way"
    ]
    assert done.stdout == ""  # no run was created
    assert len(stack.calls(audience)) == calls and stack.members(audience) == set(everyone)
    # The refused run changed no snapshot: a sound source is mirrored against the old one.
    report = report_of(mirror(stack, tmp_path, audience, everyone[:120]))
    assert (report["removed"], report["unchanged"]) == (30, 120)
    assert stack.members(audience) == set(everyone[:120])


def test_a_declared_mirror_audience_runs_on_a_producer_worker_with_its_state_dir(stack, tmp_path):
    """`mode = "mirror"` in the declared file: start_run (what beat sends) on a `producer` worker,
    the only process given the state directory."""
    import time

    from audiencesync.cli import devstack
    from audiencesync.store.runs import RunStore
    from tasks.start_run import start_run
    from workers.app import app

    audience = stack.new_audience()
    name = f"mirror-{audience}"
    (tmp_path / "audiences.toml").write_text(
        f'[audiences.{name}]\naudience_id = "{audience}"\nfile = "{tmp_path / "a.csv"}"\n'
        'column = "maid"\nmode = "mirror"\nevery_s = 3600\n'
    )
    env = {
        **stack.env,
        "AUDIENCESYNC_AUDIENCES_FILE": str(tmp_path / "audiences.toml"),
        "AUDIENCESYNC_STATE_DIR": str(tmp_path / "state"),
    }
    log = tmp_path / "producer.log"
    proc = devstack.start_worker("producer", env, concurrency=1, name="producer-m", log=log)
    store = RunStore(__import__("redis").Redis.from_url(stack.redis_url))

    def run(rows: list[str]) -> dict:
        write_csv(tmp_path / "a.csv", rows)
        seen = set(store.recent(500))
        start_run.apply_async((name,), queue="producer")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for run_id in set(store.recent(500)) - seen:
                if (report := store.report(run_id)) is not None:
                    return report
            time.sleep(0.3)
        raise TimeoutError(f"no report of {name}: {log.read_text()[-2000:]}")

    try:
        devstack.wait_workers(app, ["producer-m"], procs=[proc])
        everyone = maids(1_200, seed=84)
        first = run(everyone)
        assert first["status"] == "completed" and first["added"] == 1_200
        second = run(everyone[200:] + maids(50, seed=85))
        assert (second["added"], second["removed"], second["unchanged"]) == (50, 200, 1_000)
        assert stack.members(audience) == set(everyone[200:]) | set(maids(50, seed=85))
        # Emptied outside: the scheduled run reads what Meta counts, as `upload` does, and
        # refuses to send a difference that would not restore it.
        stack.resize_audience(audience, 0)
        calls = len(stack.calls(audience))
        start_run.apply_async((name,), queue="producer")
        refused = f"audience={name} not started: mirror run refused: Meta counts at most 0"
        devstack.wait_until(lambda: refused in log.read_text(), 60, "the scheduled refusal")
        assert len(stack.calls(audience)) == calls  # no upload: the read is the only call
    finally:
        devstack.stop(proc)
    # The second run's snapshot, promoted by the refused run (which sent nothing): the next
    # mirror run, once the audience is resynced, diffs against it.
    assert any((tmp_path / "state" / audience).glob("current/*.bin"))
    assert not any((tmp_path / "state" / audience).glob("pending/*.bin"))
