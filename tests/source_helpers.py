"""Shared by the source tests: settings, one valid MAID, reading a whole source, a file."""

from __future__ import annotations

from pathlib import Path

from audiencesync.settings import Settings
from producers.sources import Source

SETTINGS = Settings()
MAID = "6d92078a-8246-4ba4-ae5b-76104861e7dc"


def read_all(source: Source) -> list[str]:
    try:
        return [value for batch in source.batches() for value in batch]
    finally:
        source.close()


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)
