"""What the rejected values say (pure): samples merged across chunks, and the likely cause when
most of a source is rejected.

Samples are kept only for reasons whose values are not IDs (normalize.SAMPLED), at most
MAX_SAMPLES per reason, each cut to SAMPLE_CHARS, an ID inside one masked: a report stays
small and shows no MAID.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from audiencesync.domain.normalize import (
    BLANK,
    MAX_SAMPLES,
    MIXED_HASHED,
    MIXED_RAW,
    NOT_UTF8,
)

_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# Samples show an ID inside a value with its hex digits masked as x (normalize.sample).
_HEX32 = re.compile(r"[0-9a-fx]{32}", re.IGNORECASE)
_MAID_INSIDE = re.compile(r"[0-9a-fx]{8}-[0-9a-fx]{4}-[0-9a-fx]{4}-[0-9a-fx]{4}-", re.IGNORECASE)


def merge_samples(
    parts: Iterable[Mapping[str, list[str]]], limit: int = MAX_SAMPLES
) -> dict[str, list[str]]:
    """Per reason, the first `limit` distinct samples of `parts` (chunk results, in order)."""
    merged: dict[str, list[str]] = {}
    for part in parts:
        for reason, values in part.items():
            kept = merged.setdefault(reason, [])
            kept.extend(v for v in dict.fromkeys(values) if v not in kept)
            del kept[limit:]
    return dict(sorted(merged.items()))


def likely_cause(rejected: Mapping[str, int], samples: Mapping[str, list[str]]) -> str:
    """One clause naming what most likely went wrong, from the commonest reason and its samples."""
    if not rejected:
        return "check the column (--column) or the query"
    reason = max(rejected, key=lambda r: rejected[r])
    if reason in (MIXED_HASHED, MIXED_RAW):
        return (
            "the source mixes raw and SHA-256-hashed IDs, and an audience takes one kind: "
            "split the source, or hash the raw ones upstream"
        )
    if reason == BLANK:
        return (
            "most values are blank: check the column (--column), or the query; a file without "
            "a header row needs --no-header"
        )
    if reason == NOT_UTF8:
        return "most values are not UTF-8 text: is this a CSV file (or one in another encoding)?"
    shown = samples.get(reason, [])
    for char, name in _DELIMITERS.items():
        if any(char in value for value in shown):
            return (
                f"the values hold a {name} (e.g. {shown[0]!r}): pass --delimiter, or --column "
                "for the ID column"
            )
    if shown and all(_HEX32.fullmatch(v) for v in shown):
        return "the values are 32 hex digits: IDs without hyphens (Meta needs 8-4-4-4-12) or MD5"
    if any(_MAID_INSIDE.search(v) for v in shown):
        return "the values hold an ID among other text: check the column (--column) or the file"
    return "the values are not advertiser IDs: check the column (--column) or the query"


def rejected_message(ids_read: int, rejected: Mapping[str, int], samples) -> str:
    """Most of a source was rejected: how much, the commonest reason, the likely cause."""
    total = sum(rejected.values())
    reason = max(rejected, key=lambda r: rejected[r])
    pct = 100 * total / max(ids_read, 1)
    return (
        f"{total} of {ids_read} values ({pct:.1f}%) were rejected, most as {reason} "
        f"({rejected[reason]}): {likely_cause(rejected, samples)}"
    )
