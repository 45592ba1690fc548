"""A replace chunk's way through its session, against a real redis-server: batch 1 alone, the
rest in parallel, the cutover's close sent once, Meta's refusals (the Graph call is a stub)."""

from __future__ import annotations

import secrets
import time

import pytest
import redis

from audiencesync.errors import Deferred, PermanentGraphError, TransientError
from audiencesync.settings import Settings
from audiencesync.store.meta import RunMeta
from audiencesync.store.replace import ReplaceTurns
from tasks.replacing import (
    FINISHED,
    IN_PROGRESS,
    TIMED_OUT,
    ReplaceSession,
    refusal_message,
    session_over,
)

SESSION = {"session_id": 42, "batch_seq": 0, "last_batch_flag": False}


class Run:
    def __init__(self, redis_url: str, window_s: float) -> None:
        self.id = f"rs-{secrets.token_hex(4)}"
        self.turns = ReplaceTurns(redis.Redis.from_url(redis_url), hold_ttl_s=30, run_ttl_s=60)
        self.session = ReplaceSession(self.turns, Settings(replace_window_s=window_s))
        self.closes: list[dict] = []
        self.close_error: Exception | None = None

    def raw(self) -> dict[str, str]:
        raw = self.turns.r.hgetall(self.turns.meta_key(self.id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def meta(self) -> RunMeta:
        return RunMeta.parse(self.raw())

    def close(self, batch: dict) -> None:
        self.closes.append(batch)
        if self.close_error is not None:
            raise self.close_error

    def batch(self, chunk: int):
        return self.session.next_batch(self.id, chunk, self.meta(), SESSION, self.close)

    def open(self) -> None:
        first = self.batch(0)
        assert first.first and first.session["batch_seq"] == 1
        self.session.first_sending(self.id)
        self.session.accepted(self.id, first, call_s=0.01)


@pytest.fixture
def run(redis_url: str) -> Run:
    return Run(redis_url, window_s=5400)


def test_batch_1_goes_alone_then_the_others_get_their_own_seqs(run):
    first = run.batch(3)
    assert first.op == "replace" and first.first and first.session["batch_seq"] == 1
    with pytest.raises(Deferred, match="batch 1 of the replace goes first"):
        run.batch(4)
    run.session.first_sending(run.id)
    run.session.accepted(run.id, first, call_s=1.5)
    assert run.raw()["replace_call_s"] == "1.5"
    seqs = [run.batch(chunk).session["batch_seq"] for chunk in (4, 5, 6, 4)]
    assert seqs == [2, 3, 4, 2] and not run.batch(5).first


def test_at_the_cutover_one_chunk_closes_and_everything_after_goes_as_adds(redis_url):
    run = Run(redis_url, window_s=0.5)
    run.open()
    time.sleep(0.5 * 0.85)  # past the margin: no time for another replace batch
    batch = run.batch(7)
    assert batch.op == "add" and batch.session is None
    assert run.closes == [{"batch_seq": 2, "last_batch_flag": True}]
    meta = run.raw()
    assert meta["session_closed"] == "1" and "replace_cutover_at" in meta
    assert "replace_timed_out" not in meta
    assert run.batch(8).op == "add" and len(run.closes) == 1  # closed once


def test_a_close_that_must_be_tried_again_keeps_its_seq_and_holds_the_adds_back(redis_url):
    run = Run(redis_url, window_s=0.5)
    run.open()
    time.sleep(0.5 * 0.85)
    run.close_error = TransientError("no answer")
    with pytest.raises(Deferred, match="closing the replace session again"):
        run.batch(7)
    with pytest.raises(Deferred, match="another chunk is closing"):
        run.batch(8)  # adds wait: they must not arrive before the close
    run.close_error = None
    assert run.batch(7).op == "add"
    assert [c["batch_seq"] for c in run.closes] == [2, 2]


def test_a_close_meta_says_timed_out_counts_as_ended_by_meta(redis_url):
    run = Run(redis_url, window_s=0.5)
    run.open()
    time.sleep(0.5 * 0.85)
    run.close_error = PermanentGraphError("timed out", code=2650, subcode=TIMED_OUT)
    assert run.batch(7).op == "add"
    meta = run.raw()
    assert meta["session_closed"] == "1" and meta["replace_timed_out"] == "1"


def test_a_close_refused_for_good_lets_adds_go_only_once_metas_window_is_over(redis_url):
    run = Run(redis_url, window_s=1.0)
    run.open()
    time.sleep(0.85)
    run.close_error = PermanentGraphError("(#100) nope", code=100)
    with pytest.raises(Deferred, match="Meta's window is not over"):
        run.batch(7)  # the close is refused: recorded, not retried; its own add waits too
    assert "nope" in run.raw()["replace_close_error"]
    with pytest.raises(Deferred, match="Meta's window is not over"):
        run.batch(8)
    assert len(run.closes) == 1
    time.sleep(0.2)
    assert run.batch(8).op == "add" and run.raw()["replace_timed_out"] == "1"


def test_metas_refusals_say_what_to_do():
    over = PermanentGraphError("x", code=2650, subcode=TIMED_OUT)
    assert session_over(over) and session_over(
        PermanentGraphError("x", code=2650, subcode=FINISHED)
    )
    assert not session_over(PermanentGraphError("x", code=100))
    busy = refusal_message(PermanentGraphError("busy", code=2650, subcode=IN_PROGRESS))
    assert busy and "in progress" in busy and "wait until it ends" in busy
    done = refusal_message(PermanentGraphError("done", code=2650, subcode=FINISHED))
    assert done and "already finished" in done and "run the replace again" in done
    assert refusal_message(PermanentGraphError("x", code=100)) is None
