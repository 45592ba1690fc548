"""Replace sequencing against a real redis-server: the run's turn, its fence, its batch_seqs."""

from __future__ import annotations

import random
import secrets
import threading
import time

import pytest
import redis

from audiencesync.cli import devstack
from audiencesync.settings import Settings
from audiencesync.store.replace import CLOSE, ReplaceTurns, hold_ttl_s


@pytest.fixture
def turns(redis_url: str) -> ReplaceTurns:
    return ReplaceTurns(redis.Redis.from_url(redis_url), hold_ttl_s=30, run_ttl_s=60)


@pytest.fixture
def run_id() -> str:
    return f"seq-{secrets.token_hex(4)}"


def test_one_chunk_holds_the_turn_until_it_lets_go(turns, run_id):
    assert turns.take(run_id, 3)
    assert not turns.take(run_id, 5)
    assert turns.take(run_id, 3)  # its retry keeps the turn
    assert not turns.release(run_id, 5)  # only the holder can let go (the fence)
    assert turns.holder(run_id) == 3
    assert turns.release(run_id, 3)
    assert turns.take(run_id, 5) and turns.holder(run_id) == 5


def test_batch_seqs_follow_the_order_of_first_sends_and_are_remembered(turns, run_id):
    assert [turns.seq(run_id, chunk) for chunk in (7, 2, 9)] == [1, 2, 3]
    assert turns.seq(run_id, 2) == 2  # a retry re-sends the same batch_seq
    assert turns.seq(run_id, CLOSE) == 4 == turns.seq(run_id, CLOSE)
    assert turns.sent(run_id) == 4


def test_a_waiting_chunk_waits_briefly_then_gives_up_or_gets_the_turn(turns, run_id):
    assert turns.take(run_id, 1)
    assert not turns.wait(run_id, 2, max_wait_s=0.2) and turns.holder(run_id) == 1
    threading.Timer(0.1, turns.release, (run_id, 1)).start()
    assert turns.wait(run_id, 2, max_wait_s=0.5) and turns.holder(run_id) == 2


def test_a_dead_holders_turn_expires(redis_url, run_id):
    short = ReplaceTurns(redis.Redis.from_url(redis_url), hold_ttl_s=1, run_ttl_s=60)
    assert short.take(run_id, 1) and not short.take(run_id, 2)
    devstack.wait_until(lambda: short.take(run_id, 2), timeout_s=10, what="the turn's expiry")
    assert short.holder(run_id) == 2


def test_the_turn_outlasts_a_holders_longest_retry_and_call():
    settings = Settings(retry_cap_s=300, http_timeout_s=60, http_connect_timeout_s=10)
    assert hold_ttl_s(settings) > 300 + 60 + 10


def test_many_threads_send_one_batch_at_a_time_in_seq_order(turns, run_id):
    """Workers' threads as upload tasks do it: wait, take a seq, send (maybe again), let go."""
    sent: list[tuple[int, int]] = []  # (seq, chunk), in the order the sends ended
    sending: list[int] = []  # the chunks sending now
    most_at_once = 0
    lock = threading.Lock()
    rng = random.Random(5)
    chunks = list(range(24))

    def worker(mine: list[int]) -> None:
        for chunk in mine:
            while not turns.wait(run_id, chunk, max_wait_s=0.05):
                time.sleep(0.01)  # the task re-enqueued itself
            seq = turns.seq(run_id, chunk)
            for _ in range(rng.choice((1, 1, 2))):  # a retry after a transient error
                send(seq, chunk)
            turns.release(run_id, chunk)

    def send(seq: int, chunk: int) -> None:
        nonlocal most_at_once
        with lock:
            sending.append(chunk)
            most_at_once = max(most_at_once, len(sending))
        time.sleep(0.002)  # the call
        with lock:
            sending.remove(chunk)
            sent.append((seq, chunk))

    threads = [threading.Thread(target=worker, args=(chunks[i::6],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = [seq for seq, _ in sent]
    assert seqs == sorted(seqs) and sorted(set(seqs)) == list(range(1, len(chunks) + 1))
    assert most_at_once == 1  # never overlapping
    assert {chunk for _, chunk in sent} == set(chunks)
