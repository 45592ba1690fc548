"""Turn one chunk of raw source values into the entries Meta expects (pure, no I/O).

Meta's rules for MOBILE_ADVERTISER_ID: trim, lower case, keep the hyphens, 8-4-4-4-12 hex;
the all-zero ID means the person opted out of tracking and must be dropped. Hashing is optional
(SHA-256 of the normalised form). Braces around a value (`{AEBE52E7-...}`, as some SDKs log
IDs) are dropped.

A run holds one kind of ID (`kind`): raw MAIDs, or MAIDs already hashed (64 hex digits, upper
case lowered: Meta expects lower-case hex), never both in one audience. The producer settles the
kind from the run's first chunk holding a valid ID (`id_kind`, by majority); values of the other
kind are rejected as MIXED_HASHED or MIXED_RAW. Hashed IDs are sent as they are (--hash does not
hash them again).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field

OPTED_OUT_ID = "00000000-0000-0000-0000-000000000000"
MAID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HASHED_RE = re.compile(r"[0-9a-f]{64}")
RAW, HASHED = "raw", "hashed"  # a run's kind of ID

# Rejection reasons, as they appear in run reports.
BLANK = "blank"
INVALID_FORMAT = "invalid_format"
NOT_UTF8 = "not_utf8"
OPTED_OUT = "opted_out"
MIXED_HASHED = "mixed_hashed"  # a SHA-256 hash in a run of raw MAIDs
MIXED_RAW = "mixed_raw"  # a raw MAID in a run of hashed ones
# Up to MAX_SAMPLES values per reason are kept, cut to SAMPLE_CHARS: only for these reasons,
# whose values are not IDs (a mixed_* value is one, and is never shown).
SAMPLED = (INVALID_FORMAT, NOT_UTF8)
MAX_SAMPLES = 3
SAMPLE_CHARS = 40
# An ID inside a rejected value ("1;AEBE52E7-...;US": a wrong delimiter) is masked in its sample,
# hex digits as x: the sample still shows the shape, never the ID (raw, hyphenless or hashed).
_ID_INSIDE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32,}", re.IGNORECASE
)


@dataclass
class PreparedChunk:
    entries: list[str]  # unique, normalised (or hashed), in first-seen order
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    duplicates: int = 0
    samples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few raw values

    @property
    def ids_in(self) -> int:
        return len(self.entries) + sum(self.rejected.values()) + self.duplicates


def normalize_id(raw: str) -> str:
    return _unbrace(raw.strip().lower())


def _unbrace(value: str) -> str:
    return value[1:-1].strip() if value[:1] == "{" and value[-1:] == "}" else value


def id_kind(raw_values: list[str]) -> str | None:
    """RAW or HASHED, whichever most valid values are; None when no value is a valid ID."""
    normalized = list(map(normalize_id, raw_values))
    raw = sum(1 for v in normalized if MAID_RE.fullmatch(v))
    hashed = sum(1 for v in normalized if HASHED_RE.fullmatch(v))
    return None if raw == hashed == 0 else HASHED if hashed > raw else RAW


def mask_ids(text: str) -> str:
    """`text` with every ID in it (raw, hyphenless or hashed) masked, hex digits as x."""
    return _ID_INSIDE.sub(lambda m: re.sub(r"[0-9a-fA-F]", "x", m.group()), text)


def sample(raw: str) -> str:
    """A rejected value as a report may show it: IDs inside masked, trimmed, cut, undecodable
    bytes escaped."""
    cut = mask_ids(raw.strip())[:SAMPLE_CHARS]
    return cut.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def invalid_reason(normalized: str) -> str:
    """Why a normalised value that is not of the 8-4-4-4-12 hex form was rejected."""
    if not normalized:
        return BLANK
    if not normalized.isascii() and _has_undecodable_bytes(normalized):
        return NOT_UTF8
    return INVALID_FORMAT


def _has_undecodable_bytes(value: str) -> bool:
    # Sources decode with errors="surrogateescape": bytes that were not UTF-8 become U+DC80-DCFF.
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def sha256_hex(normalized: str) -> str:
    return hashlib.sha256(normalized.encode()).hexdigest()


OPTED_OUT_HASH = sha256_hex(OPTED_OUT_ID)  # the opted-out ID, hashed: dropped from hashed runs


MAID_CHARS = b"0123456789abcdef-"
MAID_LEN = 36
HYPHEN_AT = (8, 13, 18, 23)


def clean_values(blob: bytes, count: int) -> list[str] | None:
    """The normalised values of a staged chunk (`count` values joined by newlines) when every
    one is already a valid MAID but for case; else None.

    Only C-level bytes operations (no per-ID Python work): one line per value of 36 characters,
    only hex digits and hyphens, and hyphens exactly at 8-4-4-4-12 positions.
    """
    low = blob.lower()
    return low.decode("ascii").split("\n") if all_maids(low, count) else None


def all_maids(blob: bytes, count: int) -> bool:
    """Whether `blob` is exactly `count` lower-case 8-4-4-4-12 hex MAIDs joined by newlines,
    checked with C-level bytes operations only (MAID_RE, one value at a time, is 5x slower)."""
    stride = MAID_LEN + 1
    if len(blob) != stride * count - 1 or blob.translate(None, MAID_CHARS + b"\n"):
        return False
    if blob.count(b"\n") != count - 1 or blob[MAID_LEN::stride] != b"\n" * (count - 1):
        return False  # only these newlines: every value is 36 characters long
    if blob.count(b"-") != 4 * count:
        return False
    return all(blob[at::stride] == b"-" * count for at in HYPHEN_AT)


def prepare_staged(
    blob: bytes, count: int, *, hash_ids: bool = False, kind: str = RAW
) -> PreparedChunk:
    """prepare_chunk for a staged chunk, fast when the whole chunk is well-formed raw MAIDs."""
    values = clean_values(blob, count) if kind == RAW else None
    if values is None:
        raw = blob.decode("utf-8", "surrogateescape").split("\n")
        return prepare_chunk(raw, hash_ids=hash_ids, kind=kind)
    return _drop_opted_out_and_duplicates(values, Counter(), hash_ids, OPTED_OUT_ID)


def prepare_chunk(
    raw_values: list[str], *, hash_ids: bool = False, kind: str = RAW
) -> PreparedChunk:
    """Normalise, validate, drop opted-out and duplicate IDs, optionally hash; count every drop
    and keep a few samples of the values that are not IDs."""
    normalized = list(map(str.lower, map(str.strip, raw_values)))
    if "{" in "".join(normalized):  # one C-level scan; braces are rare
        normalized = list(map(_unbrace, normalized))
    own, other = (MAID_RE, HASHED_RE) if kind == RAW else (HASHED_RE, MAID_RE)
    match = own.fullmatch
    # Fast path first: the common case is a valid ID, checked by one C-level regex call.
    valid = [v for v in normalized if match(v)]
    rejected: Counter[str] = Counter()
    samples: dict[str, list[str]] = {}
    if len(valid) < len(normalized):
        mixed = MIXED_HASHED if kind == RAW else MIXED_RAW
        for value, raw in zip(normalized, raw_values, strict=True):
            if match(value):
                continue
            reason = mixed if other.fullmatch(value) else invalid_reason(value)
            rejected[reason] += 1
            kept = samples.setdefault(reason, []) if reason in SAMPLED else None
            if kept is not None and len(kept) < MAX_SAMPLES and (cut := sample(raw)) not in kept:
                kept.append(cut)  # distinct: three copies of one value say less than three
    opted_out = OPTED_OUT_ID if kind == RAW else OPTED_OUT_HASH
    chunk = _drop_opted_out_and_duplicates(valid, rejected, hash_ids and kind == RAW, opted_out)
    chunk.samples = samples
    return chunk


def _drop_opted_out_and_duplicates(
    valid: list[str], rejected: Counter[str], hash_ids: bool, opted_out: str
) -> PreparedChunk:
    first_seen = dict.fromkeys(valid)
    kept = len(valid)
    if opted_out in first_seen:  # a dict lookup: the list is scanned only when it is there
        rejected[OPTED_OUT] = valid.count(opted_out)
        kept -= rejected[OPTED_OUT]
        del first_seen[opted_out]
    unique = list(first_seen)
    entries = list(map(sha256_hex, unique)) if hash_ids else unique
    return PreparedChunk(entries, dict(rejected), kept - len(unique))
