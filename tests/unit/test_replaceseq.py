"""A replace run's session state against a real redis-server: the batch-1 lease, remembered
batch_seqs, the cutover's close lease and the session times written once."""

from __future__ import annotations

import secrets
import threading
import time

import pytest
import redis

from audiencesync.settings import Settings
from audiencesync.store.replace import CLOSE, FIRST, OPEN, WAIT, ReplaceTurns, hold_ttl_s


@pytest.fixture
def turns(redis_url: str) -> ReplaceTurns:
    return ReplaceTurns(redis.Redis.from_url(redis_url), hold_ttl_s=30, run_ttl_s=60)


@pytest.fixture
def run_id() -> str:
    return f"seq-{secrets.token_hex(4)}"


def test_one_chunk_sends_batch_1_and_the_others_wait_until_meta_accepted_it(turns, run_id):
    assert turns.first(run_id, 3) == FIRST
    assert turns.first(run_id, 5) == WAIT
    assert turns.first(run_id, 3) == FIRST  # its retry keeps the slot, and seq 1
    assert turns.seq(run_id, 3) == 1
    assert turns.mark(run_id, "replace_opened_at", 12.5)
    assert turns.first(run_id, 5) == OPEN and turns.first(run_id, 3) == OPEN
    assert turns.seq(run_id, 5) == 2


def test_batch_seqs_after_batch_1_follow_first_sends_and_are_remembered(turns, run_id):
    assert turns.first(run_id, 4) == FIRST
    turns.mark(run_id, "replace_opened_at", 1.0)
    assert [turns.seq(run_id, chunk) for chunk in (7, 2, 9)] == [2, 3, 4]
    assert turns.seq(run_id, 2) == 3  # a retry re-sends the same batch_seq
    assert turns.seq(run_id, CLOSE) == 5 == turns.seq(run_id, CLOSE)
    assert turns.sent(run_id) == 5


def test_many_threads_take_distinct_seqs_at_once(turns, run_id):
    assert turns.first(run_id, 0) == FIRST
    turns.mark(run_id, "replace_opened_at", 1.0)
    seqs: dict[int, int] = {}

    def take(chunks: range) -> None:
        for chunk in chunks:
            seqs[chunk] = turns.seq(run_id, chunk)

    threads = [threading.Thread(target=take, args=(range(1 + i, 61, 6),)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seqs.values()) == list(range(2, 61 + 1))
    assert all(turns.seq(run_id, chunk) == seq for chunk, seq in seqs.items())


def test_a_dead_batch_1_senders_slot_expires_and_the_next_takes_seq_1_from_it(redis_url, run_id):
    short = ReplaceTurns(redis.Redis.from_url(redis_url), hold_ttl_s=1, run_ttl_s=60)
    assert short.first(run_id, 1) == FIRST and short.first(run_id, 2) == WAIT
    time.sleep(1.1)
    assert short.first(run_id, 2) == FIRST and short.seq(run_id, 2) == 1
    short.mark(run_id, "replace_opened_at", 1.0)
    assert short.first(run_id, 1) == OPEN
    assert short.seq(run_id, 1) == 2  # its redelivery: a new seq, never another 1


def test_the_lease_outlasts_a_holders_longest_retry_and_call():
    settings = Settings(retry_cap_s=300, http_timeout_s=60, http_connect_timeout_s=10)
    assert hold_ttl_s(settings) > 300 + 60 + 10
    assert hold_ttl_s(Settings()) < Settings().replace_window_s * 0.15  # within the margin


def test_one_chunk_at_a_time_closes_at_a_cutover(turns, run_id):
    assert turns.take_close(run_id, 8) and turns.take_close(run_id, 8)
    assert not turns.take_close(run_id, 9)


def test_session_times_are_written_once_and_the_slowest_call_is_kept(turns, run_id):
    assert turns.mark(run_id, "replace_cutover_at", 10.0)
    assert not turns.mark(run_id, "replace_cutover_at", 20.0)
    for call_s in (0.5, 1.75, 1.0):
        turns.note_call_s(run_id, call_s)
    meta = turns.r.hgetall(turns.meta_key(run_id))
    assert meta[b"replace_cutover_at"] == b"10.0" and meta[b"replace_call_s"] == b"1.75"


def test_chunks_waiting_for_batch_1_all_wake_when_it_is_accepted(turns, run_id):
    assert not turns.wait_open(run_id, 0.05)  # not accepted yet: the wait times out
    woke: list[bool] = []
    waiters = [
        threading.Thread(target=lambda: woke.append(turns.wait_open(run_id, 3.0)))
        for _ in range(20)
    ]
    for waiter in waiters:
        waiter.start()
    turns.open(run_id)
    for waiter in waiters:
        waiter.join(timeout=60)
    assert woke == [True] * 20
    assert turns.wait_open(run_id, 0.05)  # a chunk arriving later does not wait
    assert turns.r.ttl(turns.key(run_id, "opened")) > 0  # gone with the run
