"""Streaming CSV reader: one ``SourceRow`` per record, never the whole file in memory.

Bytes are decoded with ``errors="surrogateescape"``, so one undecodable byte spoils only its own row: that
row comes back with a ``SourceError`` ("invalid utf-8 in column 'name'") and the next row reads normally. NUL
bytes are kept apart the same way. A ragged row (more or fewer fields than the header) is a ``SourceError``
too. Problems with the header itself (duplicate or empty column names) are a ``ConfigError``: no row could be
read correctly.

``line_no`` is the physical line on which a record starts (the header is line 1), so a record with a quoted
newline still points at its first line.

Example::

    >>> with CsvSource("examples/accounts.csv") as src:          # doctest: +SKIP
    ...     for row in src:
    ...         print(row.line_no, row.values["name"])
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from crmload.errors import ConfigError, SourceError

__all__ = ["DEFAULT_FIELD_LIMIT", "CsvSource", "SourceRow", "restore"]

log = logging.getLogger(__name__)

#: Largest field accepted, in characters. csv's own default (128 KiB) is too small for real memo fields.
DEFAULT_FIELD_LIMIT = 16 * 1024 * 1024

#: NUL is swapped for a lone surrogate that surrogateescape never produces (it only yields U+DC80..U+DCFF).
_NUL_MARK = "\udc00"


@dataclass(slots=True)
class SourceRow:
    """One source record: where it starts, its values by column, and why it could not be read (if so)."""

    line_no: int
    values: dict[str, str]
    error: SourceError | None = None
    #: Fields beyond the header's width (ragged rows); kept so the reject shows them.
    extra: tuple[str, ...] = ()


def _bad_chars(value: str) -> str | None:
    """Return a reason when ``value`` holds a NUL or an undecodable byte, else None."""
    if _NUL_MARK in value:
        return "NUL byte"
    for pos, ch in enumerate(value):
        if "\udc80" <= ch <= "\udcff":
            hint = "if the file is not UTF-8, give its --encoding, e.g. --encoding cp1252"
            return f"invalid utf-8 (byte 0x{ord(ch) - 0xDC00:02X} at character {pos + 1}; {hint})"
    return None


def restore(value: str) -> str:
    """Return ``value`` with NUL bytes put back, ready to be written with ``errors="surrogateescape"``."""
    return value.replace(_NUL_MARK, "\0") if _NUL_MARK in value else value


def _has_surrogate(text: str) -> bool:
    return any("\udc00" <= ch <= "\udcff" for ch in text)


class CsvSource:
    """Read a CSV file as a stream of ``SourceRow``; a context manager that closes the file.

    Args:
        path: the CSV file.
        encoding: text encoding; the default ``utf-8-sig`` also drops a leading BOM.
        delimiter: one character.
        field_limit: the largest field accepted, in characters.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        encoding: str = "utf-8-sig",
        delimiter: str = ",",
        field_limit: int = DEFAULT_FIELD_LIMIT,
    ) -> None:
        if len(delimiter) != 1:
            raise ConfigError(f"--delimiter must be one character, not {delimiter!r}")
        try:
            "".encode(encoding)
        except LookupError as exc:
            raise ConfigError(f"unknown encoding {encoding!r}") from exc
        self.path = Path(path)
        self.encoding = encoding
        self.delimiter = delimiter
        self.field_limit = field_limit
        self._fh: io.TextIOWrapper | None = None
        self._reader: Iterator[list[str]] | None = None
        self._last_line = 0
        self.header: list[str] = []

    def open(self) -> CsvSource:
        """Open the file and read the header; an empty file has an empty header and no rows."""
        try:
            raw = self.path.open("rb")
        except OSError as exc:
            raise ConfigError(f"cannot open {self.path}: {exc.strerror or exc}") from exc
        self._fh = io.TextIOWrapper(raw, encoding=self.encoding, errors="surrogateescape", newline="")
        csv.field_size_limit(max(csv.field_size_limit(), self.field_limit))
        lines = (line.replace("\0", _NUL_MARK) if "\0" in line else line for line in self._fh)
        # strict: a stray quote or an unterminated quoted field is a reported error, not a merged row.
        self._reader = csv.reader(lines, delimiter=self.delimiter, strict=True)
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise
        return self

    def _read_header(self) -> list[str]:
        assert self._reader is not None
        try:
            first = next(self._reader)
        except StopIteration:
            return []
        except csv.Error as exc:
            raise ConfigError(f"{self.path}: unreadable header: {exc}") from exc
        self._last_line = self._line_num()
        header = [h.strip() for h in first]
        if any(_has_surrogate(h) for h in header):
            raise ConfigError(f"{self.path}: header is not valid {self.encoding} (or holds a NUL byte)")
        seen: dict[str, int] = {}
        for pos, name in enumerate(header, 1):
            if not name:
                raise ConfigError(f"{self.path}: header column {pos} has no name")
            if name in seen:
                raise ConfigError(f"{self.path}: duplicate column {name!r} (columns {seen[name]} and {pos})")
            seen[name] = pos
        return header

    def _line_num(self) -> int:
        return int(getattr(self._reader, "line_num", 0))

    def close(self) -> None:
        """Close the file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> CsvSource:
        return self.open() if self._fh is None else self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[SourceRow]:
        if self._reader is None:
            self.open()
        assert self._reader is not None
        width = len(self.header)
        while width:
            start = self._last_line + 1
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self._last_line = self._line_num()
                hint = " (an unterminated quoted field?)" if "end of data" in str(exc) else ""
                yield SourceRow(start, {}, SourceError(f"unreadable record: {exc}{hint}", line_no=start))
                continue
            self._last_line = self._line_num()
            if not fields or (fields == [""] and width > 1):
                continue  # a blank line is not a record
            yield self._row(start, fields, width)

    def _row(self, line_no: int, fields: list[str], width: int) -> SourceRow:
        values = dict(zip(self.header, fields, strict=False))  # ragged rows are padded below
        extra = tuple(fields[width:])
        for name in self.header[len(fields) :]:
            values[name] = ""
        error: SourceError | None = None
        if len(fields) != width:
            error = SourceError(f"ragged row: {len(fields)} fields, header has {width}", line_no=line_no)
        else:
            for name, value in values.items():
                reason = _bad_chars(value)
                if reason:
                    error = SourceError(
                        f"{reason} in column {name!r}", line_no=line_no, column=name, value=value
                    )
                    break
        return SourceRow(line_no, values, error, extra)
