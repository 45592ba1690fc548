"""Replace batches one at a time, in order: a per-run turn (Redis mutex) and batch_seq counter.

Meta takes a usersreplace session's batches one at a time, batch_seq 1, 2, 3... in order, and a
re-send of the last accepted one (a retry after a lost answer). Chunks are uploaded by many
threads and processes, so a chunk first takes the run's turn (SET NX, its value the chunk number:
the fence), and holds it from its first send until its final outcome: its retries after a
transient error re-send the SAME batch_seq before any other chunk sends. Its batch_seq is
assigned at its first send from a per-run counter (INCR) and remembered for the chunk, so seqs
follow the order chunks are sent in, whatever order they were read in.

    as:run:{id}:replace:turn    the chunk number holding the turn (SET NX EX hold_ttl_s)
    as:run:{id}:replace:seq     the counter: the last batch_seq assigned
    as:run:{id}:replace:seqs    hash chunk -> its batch_seq ("close" -> the closing batch's)

The turn's TTL outlasts the holder's longest retry countdown and call, so only a holder that
died lets it expire; that chunk's redelivery then re-sends an old batch_seq, which Meta refuses
as out of order: the replace fails safe (its session is never closed).
"""

from __future__ import annotations

import time

import redis

from audiencesync.settings import Settings
from audiencesync.store import lua

POLL_S = 0.02  # between looks at a taken turn, within max_wait_s
CLOSE = "close"  # the closing batch's slot in the seqs hash


def hold_ttl_s(settings: Settings) -> int:
    """Longer than a holder's longest retry countdown plus its call's timeouts."""
    call_s = settings.http_timeout_s + settings.http_connect_timeout_s
    return int(settings.retry_cap_s + call_s + 60)


class ReplaceTurns:
    def __init__(self, client: redis.Redis, *, hold_ttl_s: int, run_ttl_s: int):
        self.r = client
        self.hold_ttl_s = hold_ttl_s
        self.run_ttl_s = run_ttl_s
        self._take = client.register_script(lua.REPLACE_TAKE)
        self._seq = client.register_script(lua.REPLACE_SEQ)
        self._release = client.register_script(lua.RELEASE_LOCK)

    @staticmethod
    def key(run_id: str, part: str) -> str:
        return f"as:run:{run_id}:replace:{part}"

    def take(self, run_id: str, chunk: int) -> bool:
        """True when `chunk` holds the run's turn now (taken, or kept)."""
        return bool(self._take(keys=[self.key(run_id, "turn")], args=[chunk, self.hold_ttl_s]))

    def wait(self, run_id: str, chunk: int, max_wait_s: float) -> bool:
        """take(), looking again for at most max_wait_s (the thread waits; never long)."""
        deadline = time.monotonic() + max_wait_s
        while not self.take(run_id, chunk):
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
        return True

    def holder(self, run_id: str) -> int | None:
        value = self.r.get(self.key(run_id, "turn"))
        return None if value is None else int(value)

    def release(self, run_id: str, chunk: int) -> bool:
        """Give the turn up: only its holder can (a late duplicate of another chunk cannot)."""
        return bool(self._release(keys=[self.key(run_id, "turn")], args=[chunk]))

    def seq(self, run_id: str, slot: int | str) -> int:
        """The batch_seq of chunk `slot` (or of CLOSE), assigned on first ask, then remembered."""
        keys = [self.key(run_id, "seq"), self.key(run_id, "seqs")]
        return int(self._seq(keys=keys, args=[slot, self.run_ttl_s]))

    def sent(self, run_id: str) -> int:
        """batch_seqs assigned so far."""
        return int(self.r.get(self.key(run_id, "seq")) or 0)
