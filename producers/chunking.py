"""Cut a stream of value batches of any size into chunks of at most `size` values (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def rechunk(batches: Iterable[list[str]], size: int) -> Iterator[list[str]]:
    """Yield lists of exactly `size` values, the last one shorter; never an empty list."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    pending: list[str] = []
    for batch in batches:
        if not pending and len(batch) == size:
            yield batch  # the common case when the source batch size matches: no copy
            continue
        pending.extend(batch)
        cut = len(pending) - len(pending) % size
        for start in range(0, cut, size):
            yield pending[start : start + size]
        pending = pending[cut:]
    if pending:
        yield pending


def skip_values(batches: Iterable[list[str]], count: int) -> Iterator[list[str]]:
    """The same stream without its first `count` values (resume skips the rows already staged)."""
    for batch in batches:
        if count >= len(batch):
            count -= len(batch)
            continue
        yield batch[count:] if count else batch
        count = 0
