"""Shared by the source tests: settings, one valid MAID, reading a whole source, writing a file,
the error opening one fails with."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiencesync.errors import SourceError
from audiencesync.settings import Settings
from producers.sources import Source
from producers.spec import open_source

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


def open_error(spec: str | None, settings: Settings = SETTINGS, **kw: str) -> str:
    """The one-line error opening a source fails with."""
    with pytest.raises(SourceError) as caught:
        open_source(spec, settings=settings, **kw)
    message = str(caught.value)
    assert "\n" not in message
    return message
