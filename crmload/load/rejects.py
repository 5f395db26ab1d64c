"""The rejects file: every rejected row with its original columns, plus where and why it was rejected.

Columns: the input's own columns, unchanged and in order (earlier ``crmload_*`` columns are dropped, so a
rejects file can be fixed and imported again as is), then ``crmload_line``, ``crmload_phase`` (read, map,
send) and ``crmload_error``. Rows are written and flushed as they are rejected; the file is created on the
first reject, so a clean run leaves no file behind. Undecodable bytes are written back as they were read
(surrogateescape).
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from crmload.load.mapping import RESERVED_PREFIX
from crmload.load.source import restore

__all__ = ["REJECT_COLUMNS", "RejectsWriter"]

REJECT_COLUMNS = ("crmload_line", "crmload_phase", "crmload_error")


class RejectsWriter:
    """Thread-safe streaming writer of the rejects CSV.

    Args:
        path: where to write; the file appears with the first reject.
        columns: the input's columns (``crmload_*`` ones are dropped); None takes them from the first reject.
        append: add to an existing file (``--resume``) instead of replacing it.
        encoding: the input's encoding, so the file reads back with the same ``--encoding``.
        delimiter: the input's delimiter.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        columns: Sequence[str] | None = None,
        append: bool = False,
        encoding: str = "utf-8",
        delimiter: str = ",",
    ) -> None:
        self.path = Path(path)
        self.append = append
        self.encoding = encoding
        self.delimiter = delimiter
        self.columns: list[str] | None = None
        if columns is not None:
            self.set_columns(columns)
        self.count = 0
        self._fh: IO[str] | None = None
        self._writer: Any = None
        self._lock = threading.Lock()
        if not append:
            self.path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead

    def set_columns(self, columns: Sequence[str]) -> None:
        """Set the input's columns (before the first reject)."""
        self.columns = [c for c in columns if not c.startswith(RESERVED_PREFIX)]

    def _open(self, values: Mapping[str, Any]) -> None:
        if self.columns is None:
            self.set_columns(list(values))
        assert self.columns is not None
        exists = self.append and self.path.exists() and self.path.stat().st_size > 0
        self._fh = self.path.open(
            "a" if exists else "w", encoding=self.encoding, errors="surrogateescape", newline=""
        )
        self._writer = csv.writer(self._fh, delimiter=self.delimiter)
        if not exists:
            self._writer.writerow([*self.columns, *REJECT_COLUMNS])

    def write(self, line_no: int, phase: str, error: str, values: Mapping[str, Any]) -> None:
        """Append one rejected row and flush it."""
        with self._lock:
            if self._fh is None:
                self._open(values)
            assert self.columns is not None
            row = [restore(_text(values.get(c))) for c in self.columns]
            self._writer.writerow([*row, line_no, phase, restore(error)])
            assert self._fh is not None
            self._fh.flush()
            self.count += 1

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
