"""`--max-rejected-pct P`: a validation pass over the whole source before the run exists.

Why a pass of its own rather than holding uploads until the rejected share is known: the share
is known only once the whole source has been read, and the staging window (the bound on Redis's
and the producer's memory) holds a few chunks, not an audience; holding the uploads would mean
staging the whole source. So the source is read twice: once here, validating every value with
the very functions `prepare` uses (same chunking, same kind of ID, so the same counts as the
run's report), then again by the run. Nothing is staged or sent when the share is above P. A
query runs twice: it must return the same rows both times (as `resume` already needs).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from audiencesync.domain.normalize import RAW, id_kind, prepare_staged
from audiencesync.domain.rejections import merge_samples, rejected_message
from audiencesync.errors import ConfigError
from audiencesync.settings import Settings
from audiencesync.store.staging import encode_raw
from producers.chunking import rechunk
from producers.sources import Source
from producers.spec import SourceSpec


@dataclass
class Validation:
    ids_read: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rejected_pct(self) -> float:
        return 100 * sum(self.rejected.values()) / self.ids_read if self.ids_read else 0.0


def validate(source: Source, chunk_size: int) -> Validation:
    """Every value's fate, as the run's chunks would meet it (one chunk in memory at a time)."""
    result, kind = Validation(), None
    for values in rechunk(source.batches(), chunk_size):
        kind = kind or id_kind(values)  # as the producer settles it: the first chunk with an ID
        prepared = prepare_staged(encode_raw(values), len(values), kind=kind or RAW)
        result.ids_read += len(values)
        result.rejected.update(prepared.rejected)
        result.samples = merge_samples([result.samples, prepared.samples])
    return result


def check_rejected(spec: SourceSpec, settings: Settings, max_pct: float) -> Validation:
    """Raise a one-line ConfigError when more than max_pct % of the source would be rejected."""
    if not 0 <= max_pct <= 100:
        raise ConfigError(f"--max-rejected-pct {max_pct:g}: give a percentage from 0 to 100")
    source = spec.open(settings)
    try:
        result = validate(source, settings.chunk_size)
    finally:
        source.close()
    if result.rejected_pct > max_pct:
        found = rejected_message(result.ids_read, result.rejected, result.samples)
        raise ConfigError(
            f"nothing was sent: {found}; that is above --max-rejected-pct {max_pct:g}"
        )
    return result
