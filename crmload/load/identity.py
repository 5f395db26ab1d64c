"""Which input file a journal belongs to, and whether its journalled records are still what they were.

Two checks, each as cheap as it can be:
- ``file_identity``: size and the sha256 of the first and last MiB, O(1) for any size. It survives a copy or
  a move (mtime does not take part) and catches any append, truncation or edit near either end, at open.
- ``first_change``: the reader keeps a CRC-32 of every record's text (``SourceRow.digest``) and the journal
  stores it per row, so a ``--resume`` compares the journalled records with the file now and finds an edit
  anywhere, same size or not, before anything is sent. A normal run reads the file once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FileIdentity", "file_identity", "first_change"]

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class FileIdentity:
    """The input file as the journal knows it: path (informational), size and a head+tail sha256."""

    path: str
    size: int
    fingerprint: str

    def same_content(self, other: FileIdentity) -> bool:
        """True when size and fingerprint match; the path may differ (a moved or copied file)."""
        return self.size == other.size and self.fingerprint == other.fingerprint


def file_identity(path: str | os.PathLike[str]) -> FileIdentity:
    """Return the identity of ``path``: its size and the sha256 of its first and last MiB."""
    p = Path(path)
    size = p.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with p.open("rb") as fh:
        digest.update(fh.read(_CHUNK))
        if size > _CHUNK:
            fh.seek(max(_CHUNK, size - _CHUNK))
            digest.update(fh.read(_CHUNK))
    return FileIdentity(path=str(p.resolve()), size=size, fingerprint=digest.hexdigest())


def first_change(
    journalled: Iterable[tuple[int, int]], records: Iterable[tuple[int, int]]
) -> tuple[int, str] | None:
    """The first journalled line whose record is gone or differs now, with what happened to it; else None.

    Both arguments are ``(line, digest)`` in line order: what the journal holds, and the file's records now.
    A record at a line the journal does not hold (a blank line then, or rows a killed run had read but not
    journalled) is read as a new row by the run and needs no check. The file is read no further than the
    last journalled line.
    """
    now = iter(records)
    line, digest = 0, 0
    for j_line, j_digest in journalled:
        while line < j_line:
            nxt = next(now, None)
            line, digest = nxt if nxt is not None else (j_line + 1, 0)  # the file ends before it
        if line != j_line:
            return j_line, "no longer starts a record"
        if digest != j_digest:
            return j_line, "differs"
    return None
