"""Format writers that append in batches to a partial file and can be reopened at a checkpoint's byte size:
JSON Lines, CSV (UTF-8 with a BOM), and Parquet (spooled as JSON Lines, converted in row groups at the end)."""

from __future__ import annotations

import csv
import io
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from chipp_builder.export.rows import Column, Row

FORMATS = ("csv", "jsonl", "parquet")
# The package is not on PyPI: what works is installing the extra from the clone (or pyarrow itself).
PARQUET_HINT = "from a clone, .venv/bin/pip install -e '.[parquet]' (or pip install pyarrow where chipp-builder runs)"
ROW_GROUP_SIZE = 10_000  # rows per Parquet row group, and per batch read back from the spool


class MissingPyarrow(ValueError):
    """--format parquet was asked for, but pyarrow is not installed."""


def require_pyarrow() -> None:
    """Fail early, before any request, when Parquet output cannot be written."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MissingPyarrow(f"--format parquet needs pyarrow, which is not installed: {PARQUET_HINT}") from None


class Sink(ABC):
    """Appends rows to a file opened at a known size (0 for a new file); `flush` returns the size so far."""

    encoding = "utf-8"

    def __init__(self, path: Path, resume_at: int = 0) -> None:
        self.path = path
        mode = "r+b" if resume_at else "wb"
        raw = path.open(mode)
        if resume_at:
            raw.truncate(resume_at)  # rows written after the last checkpoint would be duplicated: drop them
            raw.seek(resume_at)
        self._raw = raw
        self.handle: IO[str] = io.TextIOWrapper(raw, encoding=self.encoding, newline="")
        self.fresh = resume_at == 0

    @abstractmethod
    def write(self, rows: Sequence[Row]) -> None:
        """Append a batch of rows (each format says how)."""

    def flush(self) -> int:
        """Push everything written to the operating system; return the file's size in bytes."""
        self.handle.flush()
        return self._raw.tell()

    def close(self) -> None:
        """Flush and close the file."""
        self.handle.close()


class JsonlSink(Sink):
    """One JSON object a line, UTF-8, non-ASCII kept as is."""

    def write(self, rows: Sequence[Row]) -> None:
        """Append a batch of rows as JSON lines."""
        for row in rows:
            self.handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def csv_value(value: Any) -> Any:
    """A cell: booleans as true/false (as the API writes them), None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class CsvSink(Sink):
    """RFC 4180 CSV with a header row, in UTF-8 with a byte order mark so that Excel reads it as UTF-8."""

    def __init__(self, path: Path, columns: Sequence[Column], resume_at: int = 0) -> None:
        super().__init__(path, resume_at)
        self.names = [column.name for column in columns]
        self.writer = csv.writer(self.handle)
        if self.fresh:
            self.handle.write("\ufeff")
            self.writer.writerow(self.names)

    def write(self, rows: Sequence[Row]) -> None:
        """Append a batch of rows in the header's column order."""
        self.writer.writerows([csv_value(row.get(name)) for name in self.names] for row in rows)


def _spool_rows(spool: Path) -> Iterator[list[Row]]:
    batch: list[Row] = []
    with spool.open("rb") as handle:
        for line in handle:
            batch.append(json.loads(line))
            if len(batch) >= ROW_GROUP_SIZE:
                yield batch
                batch = []
    if batch:
        yield batch


def parse_timestamp(value: str | None) -> datetime | None:
    """An API timestamp (`2025-06-15T14:30:00Z`) as an aware datetime."""
    return None if value is None else datetime.fromisoformat(value)


def arrow_schema(columns: Sequence[Column]) -> Any:
    """The Parquet schema of a resource: timestamps in microseconds UTC, 64-bit ints, booleans, strings."""
    import pyarrow as pa

    types = {
        "string": pa.string(), "int": pa.int64(), "bool": pa.bool_(), "float": pa.float64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([pa.field(column.name, types[column.kind]) for column in columns])


def spool_to_parquet(spool: Path, target: Path, columns: Sequence[Column]) -> None:
    """Convert a spool of flat JSON rows into a Parquet file, one row group per ROW_GROUP_SIZE rows, so
    memory holds one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns)
    with pq.ParquetWriter(str(target), schema, compression="zstd") as writer:
        for batch in _spool_rows(spool):
            arrays = {}
            for column in columns:
                values = [row.get(column.name) for row in batch]
                if column.kind == "timestamp":
                    values = [parse_timestamp(value) for value in values]
                arrays[column.name] = values
            writer.write_table(pa.Table.from_pydict(arrays, schema=schema), row_group_size=ROW_GROUP_SIZE)


def replace(source: Path, target: Path) -> None:
    """Give a finished file its final name in one step (atomic on the same file system)."""
    os.replace(source, target)
