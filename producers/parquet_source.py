"""Parquet source (one column, read batch by batch), and the Arrow-to-values conversion that the
Snowflake source shares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audiencesync.errors import SourceError
from producers.sources import (
    BATCH_IDS,
    MAX_VALUE_CHARS,
    one_line,
    open_file,
    pick_column,
    rows_progress,
    tidy,
)

_ArrowValues: TypeAlias = "pa.Array | pa.ChunkedArray"


def arrow_values(values: _ArrowValues) -> list[str]:
    """One string per row: null -> "", non-strings cast, hygiene rules applied in Arrow (fast)."""
    kind = values.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        # Bytes may not be UTF-8; keep them like the CSV source does, for prepare to reject.
        as_text = [
            "" if v is None else v.decode("utf-8", "surrogateescape") for v in values.to_pylist()
        ]
        return tidy(as_text)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        try:
            values = pc.cast(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # Types Arrow cannot cast (structs, lists, some temporals): Python's str().
            return tidy(["" if v is None else str(v) for v in values.to_pylist()])
    values = pc.fill_null(values, "")
    if len(values) and pc.max(pc.utf8_length(values)).as_py() > MAX_VALUE_CHARS:
        values = pc.utf8_slice_codeunits(values, 0, MAX_VALUE_CHARS)  # slices code points
    for newline in ("\r", "\n"):
        if pc.any(pc.match_substring(values, newline)).as_py():
            values = pc.replace_substring(values, newline, " ")
    return values.to_pylist()


class ParquetSource:
    """Streams one column of a Parquet file; the row count comes from the footer."""

    def __init__(self, path: str, *, column: str | None = None, batch_ids: int = BATCH_IDS) -> None:
        self.path = path
        self.description = f"parquet {path}"
        self._batch_ids = batch_ids
        self._rows_read = 0
        self._done = False
        self._file, _ = open_file(path)
        try:
            self._parquet = pq.ParquetFile(self._file)
        except (pa.ArrowException, OSError) as e:
            self._file.close()
            raise SourceError(
                f"cannot read {path}: not a Parquet file ({one_line(e, 120)}); check the file"
            ) from None
        self.estimated_ids: int | None = self._parquet.metadata.num_rows
        names = self._parquet.schema_arrow.names
        try:
            self._column = names[pick_column(names, column, path)]
        except SourceError:
            self.close()
            raise

    def batches(self) -> Iterator[list[str]]:
        try:
            for batch in self._parquet.iter_batches(
                batch_size=self._batch_ids, columns=[self._column]
            ):
                values = arrow_values(batch.column(0))
                self._rows_read += len(values)
                yield values
            self._done = True
        except (pa.ArrowException, OSError) as e:
            raise SourceError(
                f"cannot read {self.path} after {self._rows_read} rows: {one_line(e, 120)}; "
                "check the file"
            ) from None

    def progress(self) -> float | None:
        return rows_progress(self._done, self._rows_read, self.estimated_ids)

    def close(self) -> None:
        self._parquet.close()
        self._file.close()
