"""A replace that outlasts Meta's session window (scaled down from 90 minutes to seconds), end
to end: a private stack (its own Redis, sandbox, workers), default settings but the window.

Either way the audience ends as the whole source: the part Meta replaced it with, plus the rest
sent as /users adds after the session ended; the report says how many went each way.
"""

from __future__ import annotations

from e2e_helpers import SandboxViews, maids

from audiencesync.cli import devstack

# 800 chunks at one call each: at the gate's default 200 calls/s they need 4 s or more, whatever
# the machine's speed or the threads, so a 3 s window cannot hold them.
LATENCY = ("--latency-ms", "500")
IDS, CHUNK_SIZE = 20_000, 25


class Views(SandboxViews):
    def __init__(self, graph_url: str) -> None:
        self.graph_url = graph_url


def run_replace(tmp_path, sandbox_window_s: float, **settings: str) -> tuple[list[dict], dict]:
    """Replace an audience holding other members with IDS new ones; returns the sandbox's
    records of the replace run's calls, and its report."""
    source, old = maids(IDS, seed=91), maids(300, seed=92)
    (tmp_path / "new.csv").write_text("maid\n" + "\n".join(source) + "\n")
    (tmp_path / "old.csv").write_text("maid\n" + "\n".join(old) + "\n")
    knobs = (*LATENCY, "--replace-window-s", str(sandbox_window_s))
    with devstack.private_stack(tmp_path / "stack", *knobs, **settings) as stack:
        views = Views(stack.graph_url)
        audience = views.new_audience()
        added = stack.upload(tmp_path / "old.csv", audience)
        assert added["status"] == "completed", added["message"]
        report = stack.upload(tmp_path / "new.csv", audience, mode="replace", chunk_size=CHUNK_SIZE)
        assert views.members(audience) == set(source)  # the old members are gone
        calls = sorted(views.calls(audience), key=lambda c: c["received_s"])
        start = next(i for i, c in enumerate(calls) if c["edge"] == "usersreplace")
        return calls[start:], report  # the add of the old members left out


def accounted(report: dict) -> None:
    """The report: every ID went one way or the other, and it says so."""
    assert report["status"] == "completed", report
    section = report["replace"]
    assert section["cutover"] and section["by_add"] > 0 and section["by_replace"] > 0
    assert section["by_replace"] + section["by_add"] == report["ids_uploaded"] == IDS
    message = report["message"]
    assert f"the other {section['by_add']:,} IDs were then added with /users" in message
    assert f"the {section['by_replace']:,} IDs" in message
    assert "Members not in the source were removed by the replace" in message


def test_a_replace_that_cannot_end_in_the_window_closes_in_time_and_adds_the_rest(tmp_path):
    # Ours (3 s) ends 1 s before Meta's. The close goes past the load limit: when a full test
    # run's load made 500 ms answers read as strain and the limit was cut, it waited for a slot
    # among the adds and came after Meta's window (2 runs in 4, before it did).
    calls, report = run_replace(tmp_path, 4, replace_window_s="3")
    accounted(report)
    assert not report["replace"]["timed_out"] and report["session_closed"]
    assert "so its session was closed at" in report["message"]
    replace = [c for c in calls if c["edge"] == "usersreplace"]
    (close,) = [c for c in replace if c["last_batch_flag"]]
    assert close["status"] == 200  # closed by us, within Meta's window
    batches = [c for c in replace if not c["last_batch_flag"] and c["status"] == 200]
    assert sum(c["entries"] for c in batches) == report["replace"]["by_replace"]
    adds = [c for c in calls if c["edge"] == "users"]
    assert sum(c["entries"] for c in adds if c["status"] == 200) == report["replace"]["by_add"]
    assert all(c["received_s"] >= close["answered_s"] for c in adds)  # after the close only
    assert all(c["session_id"] is None for c in adds)


def test_batches_meta_refuses_after_its_window_ended_are_sent_as_adds(tmp_path):
    """Meta's window ends before ours (here: ours is the default 90 minutes): the batches it
    discards (2650/1870158) are re-sent as adds, not lost."""
    calls, report = run_replace(tmp_path, 3)
    accounted(report)
    assert report["replace"]["timed_out"]
    assert "Meta ended the replace session" in report["message"]
    replace = [c for c in calls if c["edge"] == "usersreplace"]
    assert any(c["status"] == 400 for c in replace)  # discarded after the window
    accepted = [c for c in replace if c["status"] == 200 and not c["last_batch_flag"]]
    assert sum(c["entries"] for c in accepted) == report["replace"]["by_replace"]
