"""A replace run's session in Redis: batch 1 alone, then batch_seqs for parallel batches.

Meta opens a usersreplace session when it receives batch_seq 1; later batches may come in any
order (duplicates allowed), never another 1. So the first chunk to get here takes the batch-1
slot (a lease: SET NX EX, its value the chunk number) and sends alone; every other chunk waits
until batch 1 was accepted (the run meta's `replace_opened_at`), then takes the next batch_seq
and goes in parallel through the throttle gate like an add. A chunk's batch_seq is assigned once
and remembered, so its retries re-send the same one.

    as:run:{id}:replace:first   the chunk sending batch 1 (lease: a dead sender's slot frees)
    as:run:{id}:replace:seq     the counter: the last batch_seq assigned
    as:run:{id}:replace:seqs    hash chunk -> its batch_seq ("close" -> the closing batch's;
                                "first" -> the chunk that holds seq 1)
    as:run:{id}:replace:closer  the chunk closing the session at a cutover (lease)
    as:run:{id}:replace:opened  a token pushed when batch 1 is accepted: chunks waiting for it
                                block on it (BLPOP) and pass it on, so all wake at once

and in the run meta (as:run:{id}; RunMeta's replace_* fields) the session's times and flags,
each written once (HSETNX): batch 1's first send (Meta's 90 minutes start no earlier), its
acceptance (they started no later), the cutover, the close, the slowest call so far (max).
"""

from __future__ import annotations

import redis

from audiencesync.settings import Settings
from audiencesync.store import lua
from audiencesync.store.locks import open_latch, wait_latch

CLOSE = "close"  # the closing batch's slot in the seqs hash
FIRST, WAIT, OPEN = 1, 0, 2  # what first() answers


def hold_ttl_s(settings: Settings) -> int:
    """Longer than a holder's longest retry countdown plus its call's timeouts: only a holder
    that died lets a lease expire, and then within this time (far below Meta's 90 minutes)."""
    call_s = settings.http_timeout_s + settings.http_connect_timeout_s
    return int(settings.retry_cap_s + call_s + 60)


class ReplaceTurns:
    def __init__(self, client: redis.Redis, *, hold_ttl_s: int, run_ttl_s: int):
        self.r = client
        self.hold_ttl_s = hold_ttl_s
        self.run_ttl_s = run_ttl_s
        self._first = client.register_script(lua.REPLACE_FIRST)
        self._seq = client.register_script(lua.REPLACE_SEQ)
        self._lease = client.register_script(lua.REPLACE_TAKE)
        self._max = client.register_script(lua.REPLACE_MAX)

    @staticmethod
    def key(run_id: str, part: str) -> str:
        return f"as:run:{run_id}:replace:{part}"

    @staticmethod
    def meta_key(run_id: str) -> str:
        return f"as:run:{run_id}"  # the run meta (runs.py)

    def first(self, run_id: str, chunk: int) -> int:
        """FIRST: `chunk` sends batch 1 (seq 1, remembered); WAIT: another chunk does; OPEN."""
        keys = [*(self.key(run_id, p) for p in ("first", "seq", "seqs")), self.meta_key(run_id)]
        return int(self._first(keys=keys, args=[chunk, self.hold_ttl_s, self.run_ttl_s]))

    def seq(self, run_id: str, slot: int | str) -> int:
        """The batch_seq of chunk `slot` (or of CLOSE), assigned on first ask, then remembered."""
        keys = [self.key(run_id, "seq"), self.key(run_id, "seqs")]
        return int(self._seq(keys=keys, args=[slot, self.run_ttl_s]))

    def sent(self, run_id: str) -> int:
        """batch_seqs assigned so far."""
        return int(self.r.get(self.key(run_id, "seq")) or 0)

    def open(self, run_id: str) -> None:
        """Batch 1 was accepted: wake the chunks waiting for it (`wait_open`)."""
        open_latch(self.r, self.key(run_id, "opened"), self.run_ttl_s)

    def wait_open(self, run_id: str, timeout_s: float) -> bool:
        """Block (no polling) until batch 1 was accepted, at most timeout_s; True if it was."""
        return wait_latch(self.r, self.key(run_id, "opened"), timeout_s, self.run_ttl_s)

    def take_close(self, run_id: str, chunk: int) -> bool:
        """The lease on closing the session at a cutover: one chunk at a time sends the close."""
        lease = self._lease(keys=[self.key(run_id, "closer")], args=[chunk, self.hold_ttl_s])
        return bool(lease)

    def mark(self, run_id: str, field: str, value: str | float) -> bool:
        """Write a session time (or flag) once; True when this call wrote it."""
        return bool(self.r.hsetnx(self.meta_key(run_id), field, value))

    def note_call_s(self, run_id: str, call_s: float) -> None:
        """Keep the slowest replace call's duration: the pace one more batch needs."""
        self._max(keys=[self.meta_key(run_id)], args=["replace_call_s", round(call_s, 3)])
