"""Logging set-up for the CLI and the workers: plain lines, or one JSON object per line.

Our log calls write `run=ID chunk=N audience=NAME` in their messages; the JSON formatter lifts
those into fields, so every line can be filtered by run and chunk without parsing text.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import orjson

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_FIELDS = re.compile(r"\b(run|chunk|audience)=([^\s,:;]+)")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for key, value in _FIELDS.findall(message):
            line.setdefault(key, int(value) if key == "chunk" and value.isdigit() else value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(*, json_lines: bool, level: int = logging.WARNING) -> None:
    """The root handler (Celery keeps a root logger that already has one)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
