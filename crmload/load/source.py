"""Streaming CSV reader: one ``SourceRow`` per record, never the whole file in memory.

Bytes are decoded with ``errors="surrogateescape"``, so one undecodable byte spoils only its own row: that
row comes back with a ``SourceError`` ("invalid utf-8 in column 'name'") and the next row reads normally. NUL
bytes are kept apart the same way. Problems with the header itself (duplicate or empty column names) are a
``ConfigError``: no row could be read correctly.

A record whose fields cannot be trusted to sit in their columns has empty ``values`` and its text as read in
``raw`` (the rejects file's ``crmload_raw``, see ``RAW_COLUMN``):
- a ragged row (more or fewer fields than the header);
- an unreadable record: a stray quote, or a quoted field still open at the end of the file or past
  ``max_record_lines`` physical lines / ``max_record_chars`` characters (an unterminated quote would
  otherwise swallow every row after it). Only its first physical line is failed; reading resumes on the
  next physical line, so the rows after it are read as rows.
A row that carries a non-empty ``crmload_raw`` column (a rejects file fed back unfixed) is refused too.

Counting: ``accounting()`` compares the physical lines read with what the header, blank lines and records
account for, and lists records that span several lines yet were rejected (lines an open quote may have
joined), so "rows read" can be trusted.

``line_no`` is the physical line on which a record starts (the header is line 1), so a record with a quoted
newline still points at its first line. ``digest`` is a CRC-32 of the record's text as read: the journal
keeps it, and ``--resume`` compares it (see ``digests()``).

Example::

    >>> with CsvSource("examples/accounts.csv") as src:          # doctest: +SKIP
    ...     for row in src:
    ...         print(row.line_no, row.values["name"])
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from crmload.errors import ConfigError, SourceError

__all__ = [
    "DEFAULT_FIELD_LIMIT",
    "DEFAULT_MAX_RECORD_LINES",
    "RAW_COLUMN",
    "CsvSource",
    "SourceRow",
    "restore",
]

log = logging.getLogger(__name__)

#: Largest field accepted, in characters. csv's own default (128 KiB) is too small for real memo fields.
DEFAULT_FIELD_LIMIT = 16 * 1024 * 1024
#: Most physical lines one record may span before its open quote is taken for a missing closing quote.
DEFAULT_MAX_RECORD_LINES = 1000
#: The rejects file's column with the text of a record that could not be split into its columns.
RAW_COLUMN = "crmload_raw"

#: NUL is swapped for a lone surrogate that surrogateescape never produces (it only yields U+DC80..U+DCFF).
_NUL_MARK = "\udc00"
_FIX_RAW = (
    f"fix the row: its values were not read into their columns (the text as read is in {RAW_COLUMN}); "
    f"put each value in its column and empty {RAW_COLUMN}"
)


@dataclass(slots=True)
class SourceRow:
    """One source record: where it starts, its values by column, and why it could not be read (if so)."""

    line_no: int
    values: dict[str, str]
    error: SourceError | None = None
    #: Fields beyond the header's width (ragged rows); kept so the reason shows them.
    extra: tuple[str, ...] = ()
    #: The record's text, without its last line end, when ``values`` cannot be trusted (else "").
    raw: str = ""
    #: CRC-32 of the record's text as read (line ends included); None when not read from a file.
    digest: int | None = None


def _bad_chars(value: str) -> str | None:
    """Return a reason when ``value`` holds a NUL or an undecodable byte, else None."""
    if _NUL_MARK in value:
        return "NUL byte"
    for pos, ch in enumerate(value):
        if "\udc80" <= ch <= "\udcff":
            hint = "if the file is not UTF-8, give its --encoding, e.g. --encoding cp1252"
            return f"invalid utf-8 (byte 0x{ord(ch) - 0xDC00:02X} at character {pos + 1}; {hint})"
    return None


def _bad_value(line_no: int, values: dict[str, str]) -> SourceError | None:
    for name, value in values.items():
        reason = _bad_chars(value)
        if reason:
            return SourceError(f"{reason} in column {name!r}", line_no=line_no, column=name, value=value)
    return None


def restore(value: str) -> str:
    """Return ``value`` with NUL bytes put back, ready to be written with ``errors="surrogateescape"``."""
    return value.replace(_NUL_MARK, "\0") if _NUL_MARK in value else value


def _has_surrogate(text: str) -> bool:
    return any("\udc00" <= ch <= "\udcff" for ch in text)


def _digest(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def _encoded_len(line: str, encoding: str) -> int:
    try:
        return len(line.encode(encoding, "surrogateescape"))
    except UnicodeError:
        return len(line)


def _strip_eol(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\n", "\r")) else text


class CsvSource:
    """Read a CSV file as a stream of ``SourceRow``; a context manager that closes the file.

    Args:
        path: the CSV file.
        encoding: text encoding; the default ``utf-8-sig`` also drops a leading BOM.
        delimiter: one character.
        field_limit: the largest field accepted, in characters.
        max_record_lines: the most physical lines one record may span (a quoted field open longer fails
            the record's first line, and reading resumes on the next line).
        max_record_chars: the most characters one record may span when it runs over several lines
            (default: ``field_limit``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        encoding: str = "utf-8-sig",
        delimiter: str = ",",
        field_limit: int = DEFAULT_FIELD_LIMIT,
        max_record_lines: int = DEFAULT_MAX_RECORD_LINES,
        max_record_chars: int | None = None,
    ) -> None:
        if len(delimiter) != 1:
            raise ConfigError(f"--delimiter must be one character, not {delimiter!r}")
        try:
            "".encode(encoding)
        except LookupError as exc:
            raise ConfigError(f"unknown encoding {encoding!r}") from exc
        if max_record_lines < 1 or (max_record_chars is not None and max_record_chars < 1):
            raise ConfigError("max_record_lines and max_record_chars must be at least 1")
        self.path = Path(path)
        self.encoding = encoding
        self.delimiter = delimiter
        self.field_limit = field_limit
        self.max_record_lines = max_record_lines
        self.max_record_chars = field_limit if max_record_chars is None else max_record_chars
        self._fh: io.TextIOWrapper | None = None
        self._reader: Iterator[list[str]] | None = None
        self._lines: Iterator[str] | None = None
        self._buf: list[str] = []  # the physical lines of the record being read
        self._back: list[str] = []  # lines to read again, last first
        self._overflowed = False
        self._next_line = 1  # the physical line number of the next record
        self._raw_col: str | None = None
        self._complete = False  # the file was read to its end
        self.header: list[str] = []
        #: Counts for ``accounting()``.
        self.physical_lines = 0
        self.header_lines = 0
        self.blank_lines = 0
        self.records = 0
        self.joined_spans: list[tuple[int, int]] = []
        #: Bytes of the file behind the lines read so far (the header's included): progress against the size.
        self.bytes_read = 0

    def open(self) -> CsvSource:
        """Open the file and read the header; an empty file has an empty header and no rows."""
        try:
            raw = self.path.open("rb")
        except OSError as exc:
            raise ConfigError(f"cannot open {self.path}: {exc.strerror or exc}") from exc
        self._fh = io.TextIOWrapper(raw, encoding=self.encoding, errors="surrogateescape", newline="")
        csv.field_size_limit(max(csv.field_size_limit(), self.field_limit))
        self._new_reader()
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise
        self._raw_col = RAW_COLUMN if RAW_COLUMN in self.header else None
        return self

    def _new_reader(self) -> None:
        """(Re)start csv on our line feed: after a failed record, its later lines are read again."""
        if self._lines is not None:
            self._lines.close()  # type: ignore[attr-defined]  # a generator: counts its lines on close
        self._overflowed = False
        self._lines = self._feed()
        # strict: a stray quote or an unterminated quoted field is a reported error, not a merged row.
        self._reader = csv.reader(self._lines, delimiter=self.delimiter, strict=True)

    def _feed(self) -> Iterator[str]:
        """Physical lines for csv, pushed-back ones first; ends early when one record outgrows its limits.

        Every line csv takes is kept in ``_buf`` (emptied per record), so a failed record's text is known.
        """
        assert self._fh is not None
        fh, buf, back = self._fh, self._buf, self._back
        taken = 0
        try:
            # A failed record hands its later lines back and starts a new feed: they come first.
            while back:
                line = back.pop()
                buf.append(line)
                if len(buf) > 1 and self._too_long():
                    return
                yield line
            for line in fh:
                taken += 1
                # Exact bytes, not the buffered file position (that runs up to 16 KiB ahead of the rows).
                self.bytes_read += len(line) if line.isascii() else _encoded_len(line, self.encoding)
                if "\0" in line:
                    line = line.replace("\0", _NUL_MARK)  # noqa: PLW2901 - the line as csv gets it
                buf.append(line)
                if len(buf) > 1 and self._too_long():
                    return
                yield line
            self._complete = True
            # A BOM (or an encoding's own marks) is not in the lines: at the end, the whole file was read.
            with contextlib.suppress(OSError, ValueError):
                self.bytes_read = os.fstat(fh.fileno()).st_size
        finally:
            self.physical_lines += taken

    def _too_long(self) -> bool:
        buf = self._buf
        if len(buf) > self.max_record_lines or sum(map(len, buf)) > self.max_record_chars:
            self._overflowed = True
        return self._overflowed

    def _read_header(self) -> list[str]:
        assert self._reader is not None
        self._buf.clear()
        try:
            first = next(self._reader)
        except StopIteration:
            return []
        except csv.Error as exc:
            raise ConfigError(f"{self.path}: unreadable header: {exc}") from exc
        self.header_lines = len(self._buf)
        self._next_line = 1 + len(self._buf)
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

    def close(self) -> None:
        """Close the file."""
        if self._lines is not None:
            self._lines.close()  # type: ignore[attr-defined]
            self._lines = None
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
        width = len(self.header)
        buf = self._buf
        line = self._next_line
        records = blanks = 0
        try:
            while width:
                buf.clear()
                try:
                    fields = next(self._reader)  # type: ignore[arg-type]
                except StopIteration:
                    return
                except csv.Error as exc:
                    records += 1
                    failed = self._unreadable(line, exc)
                    line += 1
                    yield failed
                    continue
                start = line
                line += len(buf)
                if not fields or (fields == [""] and width > 1):
                    blanks += 1
                    continue  # a blank line is not a record
                records += 1
                yield self._row(start, fields, width)
        finally:
            self._next_line = line
            self.records += records
            self.blank_lines += blanks

    def _row(self, line_no: int, fields: list[str], width: int) -> SourceRow:
        buf = self._buf
        text = buf[0] if len(buf) == 1 else "".join(buf)
        try:
            digest = zlib.crc32(text.encode("utf-8"))
            clean = True
        except UnicodeEncodeError:  # a NUL or an undecodable byte somewhere in the record
            digest, clean = _digest(text), False
        if len(fields) != width:
            return self._ragged(line_no, fields, width, text, digest)
        values = dict(zip(self.header, fields))  # noqa: B905 - the widths are equal here
        if self._raw_col is not None and values[self._raw_col]:
            error = SourceError(_FIX_RAW, line_no=line_no, column=self._raw_col)
            return SourceRow(line_no, values, error, (), values[self._raw_col], digest)
        return SourceRow(line_no, values, None if clean else _bad_value(line_no, values), (), "", digest)

    def _ragged(self, line_no: int, fields: list[str], width: int, text: str, digest: int) -> SourceRow:
        lines = len(self._buf)
        where = ""
        if lines > 1:
            last = line_no + lines - 1
            self.joined_spans.append((line_no, last))
            where = f" over lines {line_no}-{last} (an unterminated quote may have joined them)"
            log.warning("%s: lines %s-%s were read as one record and rejected", self.path, line_no, last)
        error = SourceError(f"ragged row: {len(fields)} fields, header has {width}{where}", line_no=line_no)
        return SourceRow(line_no, {}, error, tuple(fields[width:]), _strip_eol(text), digest)

    def _unreadable(self, line_no: int, exc: csv.Error) -> SourceRow:
        """Fail the record's first physical line; its other lines are read again as records of their own."""
        buf = self._buf
        first = buf[0] if buf else ""
        self._back.extend(reversed(buf[1:]))
        if self._overflowed:
            reason = (
                f"a quoted field runs past {self.max_record_lines} lines or {self.max_record_chars} "
                "characters (an unterminated quote?)"
            )
        else:
            hint = " (an unterminated quoted field?)" if "end of data" in str(exc) else ""
            reason = f"{exc}{hint}"
        if len(buf) > 1:
            log.warning(
                "%s: line %s is unreadable (%s); reading on at line %s",
                self.path,
                line_no,
                reason,
                line_no + 1,
            )
        self._new_reader()
        error = SourceError(f"unreadable record: {reason}", line_no=line_no)
        return SourceRow(line_no, {}, error, (), _strip_eol(first), _digest(first))

    # -- checks ----------------------------------------------------------------------------------------------
    def accounting(self) -> dict[str, Any]:
        """Physical lines read against the lines header, blanks and records account for (after a read)."""
        complete = self._complete and not self._back
        return {
            "complete": complete,
            "physical_lines": self.physical_lines,
            "header_lines": self.header_lines,
            "blank_lines": self.blank_lines,
            "records": self.records,
            # Only a whole read can be checked: a run stopped early has lines still in flight.
            "unaccounted_lines": self.physical_lines - (self._next_line - 1) if complete else None,
            "joined_spans": [list(s) for s in self.joined_spans],
        }

    def digests(self) -> Iterator[tuple[int, int]]:
        """Read the file again from the top, yielding ``(line_no, digest)`` per record (for ``--resume``)."""
        twin = CsvSource(
            self.path,
            encoding=self.encoding,
            delimiter=self.delimiter,
            field_limit=self.field_limit,
            max_record_lines=self.max_record_lines,
            max_record_chars=self.max_record_chars,
        )
        with twin:
            for row in twin:
                if row.digest is not None:
                    yield row.line_no, row.digest
