"""The rejects file: every rejected row with its original columns, plus where and why it was rejected.

Columns: the input's own columns, unchanged and in order (earlier ``crmload_*`` columns are dropped, so a
rejects file can be fixed and imported again as is), then ``crmload_line``, ``crmload_phase`` (read, map,
send), ``crmload_error`` and ``crmload_raw``. Rows are written and flushed as they are rejected; the file is
created on the first reject, so a clean run leaves no file behind. Undecodable bytes are written back as they
were read (surrogateescape). The same writer makes the in-doubt file (``FILE.in-doubt.csv``).

Which paths it may take, how an earlier file is replaced (never deleted at start), encodings and the 0600
mode: see ``crmload.load.outfiles``. Rows given as dicts with differing keys get the union of the columns
seen: a reject bringing a new column rewrites the file once with the wider header.

``crmload_raw`` holds the text of a record that could not be split into its columns (a ragged row, an
unterminated quote); its columns are then left empty, and the reader refuses the row again until the user
fills them and empties ``crmload_raw``.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from crmload.load.mapping import RESERVED_PREFIX
from crmload.load.outfiles import ERRORS, check_output_path, is_output_file, output_encoding
from crmload.load.source import RAW_COLUMN, CsvSource, restore

__all__ = ["REJECT_COLUMNS", "RejectsWriter", "open_writer"]

REJECT_COLUMNS = ("crmload_line", "crmload_phase", "crmload_error", RAW_COLUMN)


class RejectsWriter:
    """Thread-safe streaming writer of the rejects CSV.

    Args:
        path: where to write; the file appears (or replaces an earlier one of ours) with the first row.
        columns: the input's columns (``crmload_*`` ones are dropped); None takes them from the rows.
        append: add to an existing file of ours (``--resume``) instead of replacing it.
        encoding: the input's encoding, so the file reads back with the same ``--encoding``.
        delimiter: the input's delimiter.
        force: allow replacing an existing file that is not a crmload rejects file (ConfigError otherwise).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        columns: Sequence[str] | None = None,
        append: bool = False,
        encoding: str = "utf-8",
        delimiter: str = ",",
        force: bool = False,
    ) -> None:
        self.path = Path(path)
        self.append = append
        self.encoding = encoding
        self.delimiter = delimiter
        self.force = force
        self.columns: list[str] | None = None
        self._known: set[str] = set()
        if columns is not None:
            self.set_columns(columns)
        self.count = 0
        self._fh: IO[str] | None = None
        self._writer: Any = None
        self._lock = threading.Lock()
        # Nothing is removed here: an earlier file of ours stays until this run writes its first row.
        self.earlier = check_output_path(self.path, force=force)

    @property
    def kept_earlier(self) -> bool:
        """True when an earlier run's file is at ``path`` and this run has not replaced or appended to it."""
        return self.earlier and self.count == 0 and not self.append

    @property
    def holds_rows(self) -> bool:
        """True when the file at ``path`` holds this run's rows (or, appending, its earlier runs')."""
        return self.count > 0 or (self.append and self.earlier)

    def set_columns(self, columns: Sequence[str]) -> None:
        """Set the input's columns (before the first reject)."""
        self.columns = [c for c in columns if not c.startswith(RESERVED_PREFIX)]
        self._known = set(self.columns)

    def _open(self, values: Mapping[str, Any]) -> None:
        if self.columns is None:
            self.set_columns(list(values))
        assert self.columns is not None
        if self.append and is_output_file(self.path):
            with self.path.open(encoding=self.encoding, errors="surrogateescape", newline="") as old:
                header = next(csv.reader(old, delimiter=self.delimiter), [])
            theirs = [c for c in header if not c.startswith(RESERVED_PREFIX)]
            self.set_columns(theirs + [c for c in self.columns if c not in theirs])
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)  # a file an older version left with the umask's mode
            self._reopen()
            if len(self.columns) > len(theirs):
                self._rewrite(len(theirs))
            return
        fh, tmp = self._new_file()
        csv.writer(fh, delimiter=self.delimiter).writerow([*self.columns, *REJECT_COLUMNS])
        self._replace(fh, tmp)

    def _new_file(self) -> tuple[IO[str], str]:
        """A new 0600 file beside ``path`` (mkstemp's mode), to be renamed over it."""
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
        return os.fdopen(fd, "w", encoding=self.encoding, errors=ERRORS, newline=""), tmp

    def _replace(self, fh: IO[str], tmp: str) -> None:
        fh.close()
        try:
            check_output_path(self.path, force=self.force)  # a file that appeared since is refused too
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
        self._reopen()

    def _reopen(self) -> None:
        self._fh = self.path.open("a", encoding=self.encoding, errors=ERRORS, newline="")
        self._writer = csv.writer(self._fh, delimiter=self.delimiter)

    def _widen(self, values: Mapping[str, Any]) -> None:
        """Add columns a row brings that the file lacks (rows given as dicts with differing keys)."""
        assert self.columns is not None
        new = [c for c in values if c not in self._known and not c.startswith(RESERVED_PREFIX)]
        if new:
            width = len(self.columns)
            self.set_columns(self.columns + new)
            self._rewrite(width)

    def _rewrite(self, width: int) -> None:
        """Rewrite the file with the current, wider header; earlier rows get empty new columns."""
        assert self._fh is not None
        assert self.columns is not None
        self._fh.close()
        pad = [""] * (len(self.columns) - width)
        new, tmp = self._new_file()
        with self.path.open(encoding=self.encoding, errors="surrogateescape", newline="") as old:
            reader = csv.reader(old, delimiter=self.delimiter)
            writer = csv.writer(new, delimiter=self.delimiter)
            next(reader, None)
            writer.writerow([*self.columns, *REJECT_COLUMNS])
            writer.writerows([*row[:width], *pad, *row[width:]] for row in reader)
        self._replace(new, tmp)

    def write(
        self, line_no: int, phase: str, error: str, values: Mapping[str, Any], *, raw: str = ""
    ) -> None:
        """Append one rejected row and flush it; ``raw`` is the record's text when its columns are empty."""
        with self._lock:
            if self._fh is None:
                self._open(values)
            self._widen(values)
            assert self.columns is not None
            row = [restore(_text(values.get(c))) for c in self.columns]
            self._writer.writerow([*row, line_no, phase, restore(error), restore(raw)])
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


def open_writer(
    arg: RejectsWriter | str | os.PathLike[str] | None,
    *,
    source: CsvSource | None,
    flag: str,
    protected: Mapping[str, str | os.PathLike[str] | None],
    append: bool,
    force: bool,
) -> RejectsWriter | None:
    """The Loader's writer for ``arg`` (a writer, a path or None), refusing a path it must not write."""
    if arg is None or isinstance(arg, RejectsWriter):
        writer = arg
    else:
        where = dict(protected)
        if source is not None:
            where["input"] = source.path
        check_output_path(arg, flag=flag, protected=where, force=force)
        kw: dict[str, str] = {}
        if source is not None:
            kw = {"encoding": output_encoding(source.encoding, source.path), "delimiter": source.delimiter}
        writer = RejectsWriter(arg, append=append, force=force, **kw)
    if source is not None and writer is not None:
        writer.set_columns(source.header)
    return writer
