"""A mirror run's report, sessions and guard (pure), and its lock (real Redis)."""

from __future__ import annotations

import re
import time

import orjson
import pytest

from audiencesync.domain.modes import chunk_op, chunk_session
from audiencesync.domain.report import build_report, chunk_result
from audiencesync.mirror.diff import DiffCounts
from audiencesync.mirror.plan import guard_message, mirror_meta
from audiencesync.store.meta import RunMeta

ADDS, REMOVES = 25, 12  # planned; chunks of 10: 3 addition chunks, then 2 removal chunks


def meta(**extra) -> dict[str, str]:
    counts = DiffCounts(
        ids_read=50, rejected={"blank": 2}, duplicates=3, additions=ADDS, removals=REMOVES
    )
    counts.unchanged = 50 - 2 - 3 - ADDS
    fields = {"mode": "mirror", "session_id": 7, "started_at": time.time() - 1, **extra}
    fields |= mirror_meta(counts, chunk_size=10, remove_session_id=9)
    return {k: str(v) for k, v in fields.items()}


def results(failed: set[int] = frozenset()) -> list[dict]:
    sizes = [10, 10, 5, 10, 2]
    out = []
    for chunk, n in enumerate(sizes):
        if chunk in failed:
            out.append(chunk_result(chunk, n, entries=n, failed="boom", ids_failed=n))
        else:
            out.append(chunk_result(chunk, n, entries=n, uploaded=n))
    return out


def test_a_clean_mirror_run_adds_up():
    report = build_report("r", RunMeta.parse(meta()), results(), time.time())
    assert report["status"] == "completed", report
    assert (report["added"], report["removed"], report["unchanged"]) == (ADDS, REMOVES, 20)
    assert report["ids_read"] == 50 and report["unaccounted"] == 0
    assert report["ids_per_s"] == pytest.approx(50 / report["duration_s"], rel=0.01)
    assert report["ids_rejected"] == {"blank": 2} and report["duplicates"] == 3


@pytest.mark.parametrize(
    ("failed", "added", "removed", "lost"), [({1}, 15, 12, 10), ({4}, 25, 10, 2)]
)
def test_a_failed_chunk_is_an_error_whichever_side_it_is_on(failed, added, removed, lost):
    report = build_report("r", RunMeta.parse(meta()), results(failed), time.time())
    assert report["status"] == "completed_with_errors"
    assert (report["added"], report["removed"]) == (added, removed)
    assert report["additions_failed"] + report["removals_failed"] == report["ids_failed"] == lost
    assert report["unaccounted"] == 0
    assert "run the mirror again" in report["message"]


def test_a_chunk_without_an_outcome_is_unaccounted():
    report = build_report("r", RunMeta.parse(meta()), results()[:-1], time.time())
    assert report["unaccounted"] == 2 and report["status"] == "failed"


def test_nothing_changed_is_a_completed_run():
    m = meta()
    m.update(additions_planned="0", removals_planned="0", removals_from="0", unchanged="45")
    report = build_report("r", RunMeta.parse(m), [], time.time())
    assert report["status"] == "completed" and report["unaccounted"] == 0


def test_additions_and_removals_go_in_two_sessions_numbered_from_1():
    m = meta()
    assert [chunk_op(RunMeta.parse(m), c) for c in range(5)] == ["add"] * 3 + ["remove"] * 2
    assert [chunk_session(RunMeta.parse(m), c)[1]["batch_seq"] for c in range(5)] == [1, 2, 3, 1, 2]
    assert {chunk_session(RunMeta.parse(m), c)[1]["session_id"] for c in (3, 4)} == {9}
    assert orjson.loads(m["source_rejected"]) == {"blank": 2}


@pytest.mark.parametrize(
    ("previous", "removals", "additions", "refused"),
    [
        (150, 60, 0, True),
        (150, 60, 20, False),
        (150, 51, 0, True),
        (150, 50, 0, False),
        (0, 0, 5, False),
    ],
)
def test_the_guard_refuses_removals_that_leave_under_100(previous, removals, additions, refused):
    counts = DiffCounts(additions=additions, removals=removals, previous_size=previous)
    message = guard_message(counts)
    assert (message is not None) == refused
    if refused:
        assert f"leave the audience with {counts.new_size} people" in message


def test_a_second_mirror_run_of_an_audience_is_refused_while_one_runs(tmp_path, redis_url):
    import redis

    from audiencesync.errors import ConfigError
    from audiencesync.settings import Settings
    from audiencesync.store.runs import RunStore
    from producers.mirror import MirrorRun
    from producers.pipeline import RunRequest

    store = RunStore(redis.Redis.from_url(redis_url))  # the real one: locks are Lua scripts
    store.r.delete("as:lock:audience:mirror:42")
    settings = Settings(state_dir=str(tmp_path))
    store.take_audience_lock("mirror:42", "r1", 300)
    run = MirrorRun(store, settings, RunRequest("42", mode="mirror"), "r2")
    with pytest.raises(ConfigError, match=r"mirror run in progress \(r1\).*status r1"), run:
        run.plan(source=None)
    assert store.take_audience_lock("mirror:42", "r3", 300) == "r1"  # still r1's
    store.save_report("r1", {"run_id": "r1", "status": "completed"})  # r1 is over
    assert store.take_audience_lock("mirror:42", "r3", 300) == "r1"
    with MirrorRun(store, settings, RunRequest("42", mode="mirror"), "r3") as run:
        run._take_lock()  # a finished run's lock is stale: taken over
        assert store.take_audience_lock("mirror:42", "r4", 300) == "r3"
    assert store.take_audience_lock("mirror:42", "r4", 300) is None  # freed: r3 sent nothing


def test_the_printed_report_says_added_removed_and_unchanged():
    from audiencesync.cli.display import format_report

    m = meta(audience_id="42", ids_read="37")
    text = format_report(build_report("r", RunMeta.parse(m), results(), time.time()))
    assert f"added {ADDS}, removed {REMOVES} of {REMOVES}, unchanged 20" in text
    assert "(mirror)" in text


def test_a_mirror_run_must_send_ids_in_the_form_the_snapshot_was_sent(tmp_path, redis_url):
    """Removals of IDs sent plain cannot be sent hashed (Meta would match nothing)."""
    import redis

    from audiencesync.errors import ConfigError
    from audiencesync.mirror import diff as mirrordiff
    from audiencesync.mirror.snapshot import AudienceState
    from audiencesync.settings import Settings
    from audiencesync.store.runs import RunStore
    from producers.mirror import MirrorRun
    from producers.pipeline import RunRequest

    state = AudienceState(tmp_path, "43")
    mirrordiff.compute(state, "r1", [["6d92078a-8246-4ba4-ae5b-76104861e7dc"]], "plain")
    state.promote()
    store = RunStore(redis.Redis.from_url(redis_url))
    request = RunRequest("43", mode="mirror", hash_ids=True)
    run = MirrorRun(store, Settings(state_dir=str(tmp_path)), request, "r2")
    with pytest.raises(ConfigError, match="sent plain, this run would send them sha256"), run:
        run.plan(source=None)
    assert state.current_form() == "plain" and not state.pending.exists()
    assert store.take_audience_lock("mirror:43", "r3", 300) is None  # r2 let it go
    store.release_audience_lock("mirror:43", "r3")


@pytest.mark.parametrize("failing", ["source", "state_dir"])
def test_a_failure_while_diffing_is_one_line_and_leaves_no_trace(tmp_path, redis_url, failing):
    import redis

    from audiencesync.errors import AudienceSyncError
    from audiencesync.settings import Settings
    from audiencesync.store.runs import RunStore
    from producers.mirror import MirrorRun
    from producers.pipeline import RunRequest

    class Source:
        def batches(self):
            yield ["6d92078a-8246-4ba4-ae5b-76104861e7dc"]
            if failing == "source":
                raise ValueError("bad row")

    (tmp_path / "a-file").write_text("")
    state_dir = tmp_path / ("a-file" if failing == "state_dir" else "state")  # not a directory
    store = RunStore(redis.Redis.from_url(redis_url))
    run = MirrorRun(store, Settings(state_dir=str(state_dir)), RunRequest("44"), "diff-fails")
    says = {
        "source": "the source failed while mirroring (bad row); nothing was sent",
        "state_dir": "mirror state directory unusable",
    }[failing]
    with pytest.raises(AudienceSyncError, match=re.escape(says)), run:
        run.plan(Source())
    assert store.run("diff-fails") is None
    assert not (state_dir / "44").exists() or list((state_dir / "44").iterdir()) == []
    assert store.take_audience_lock("mirror:44", "r2", 300) is None
    store.release_audience_lock("mirror:44", "r2")
