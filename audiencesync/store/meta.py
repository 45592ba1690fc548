"""A run's meta, typed: its hash (`as:run:{id}`, see runs.py) parsed once into a frozen RunMeta.

The hash itself is unchanged: create_run writes it, the Lua scripts and HINCRBY counters update
it, and Redis stores every field as a string. Nothing else reads those strings: flags ("1"),
counters and ids are parsed here, once per read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import orjson


class Mode(StrEnum):
    """What a run does to its audience (domain/modes.py says how)."""

    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"
    MIRROR = "mirror"


OPS = (Mode.ADD, Mode.REMOVE, Mode.REPLACE)  # what one chunk's call does: a mirror run mixes two


class Status(StrEnum):
    RUNNING = "running"
    STALLED = "stalled"  # no progress for stall_after_s (the watchdog)
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RunMeta:
    audience_id: str
    mode: Mode
    status: Status
    attempt: int  # bumped by each resume: a task of an older attempt stands down
    started_at: float
    progress_at: float  # the last chunk staged or finished (the watchdog's clock)
    session_id: int
    ad_account_id: str = ""  # the throttle's key; the audience's own id when unknown
    audience_name: str | None = None  # a declared audience (scheduled runs)
    hash_ids: bool = False
    id_kind: str = ""  # "raw" or "hashed": settled by the producer from the first chunk with IDs
    source: str = ""  # the source's description, safe to show
    destination: str = ""  # the Graph URL/version it is for (graph/destination.py); no token
    estimated_ids: int = 0
    # progress
    chunks_staged: int = 0
    ids_read: int = 0
    chunks_done: int = 0
    ids_done: int = 0
    ids_uploaded: int = 0
    chunks_failed: int = 0
    producer_done: bool = False  # every chunk is staged (or the producer stopped)
    source_done: bool = False  # the source was read to its end
    # how it stopped
    aborted: str | None = None
    cancelled: bool = False
    resumed_after_cancel: bool = False  # resume withdrew a cancel: its dropped chunks stay failed
    replace_failed: str | None = None
    source_error: str | None = None
    # sessions: closed once their last batch was accepted (a replace's: or ended by Meta)
    session_closed: bool = False
    close_tried: bool = False  # finalize sent a close: Meta's "closed" then means one landed
    # a replace run's session, each written once (store/replace.py)
    replace_first_sent_at: float | None = None  # batch 1's first send
    replace_opened_at: float | None = None  # batch 1 accepted
    replace_cutover_at: float | None = None  # no replace batch from here: the rest by add
    replace_closed_at: float | None = None  # closed at the cutover
    replace_call_s: float = 0.0  # the slowest replace call so far
    replace_timed_out: bool = False  # Meta's window ended the session
    replace_close_error: str | None = None  # Meta refused the cutover's close for good
    remove_session_id: int | None = None  # a mirror run's removals
    remove_session_closed: bool = False
    # a mirror run: chunks from removals_from on are removals; its counts of the source
    removals_from: int | None = None
    source_ids_read: int = 0
    source_rejected: dict[str, int] = field(default_factory=dict)
    source_duplicates: int = 0
    unchanged: int = 0
    additions_planned: int = 0
    removals_planned: int = 0
    # the throttle's counters for the run (HINCRBYFLOAT)
    throttle_events: float = 0.0
    throttle_cooldown_s: float = 0.0
    soft_throttle_events: float = 0.0
    budget_wait_s: float = 0.0  # call-seconds spent waiting for Meta's budget (guard.py)
    # the hash as Redis holds it: for `status --json`, the source spec, and the throttle's figures
    raw: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, raw: dict[str, str]) -> RunMeta:
        """Each field from the hash field of its name (`hash_ids` from `hash`), by its type."""
        values = {
            f.name: _PARSE[str(f.type)](raw.get(_HASH_FIELD.get(f.name, f.name)) or None)
            for f in fields(cls)
            if f.name != "raw"
        }
        return cls(**values, raw=dict(raw))


_HASH_FIELD = {"hash_ids": "hash"}
_PARSE: dict[str, Callable[[str | None], Any]] = {
    "str": lambda v: v or "",
    "str | None": lambda v: v,
    "int": lambda v: int(v or 0),
    "int | None": lambda v: None if v is None else int(v),
    "float": lambda v: float(v or 0),
    "float | None": lambda v: None if v is None else float(v),
    "bool": lambda v: v == "1",
    "Mode": lambda v: Mode(v or Mode.ADD),
    "Status": lambda v: Status(v or Status.RUNNING),
    "dict[str, int]": lambda v: orjson.loads(v or "{}"),
}
