"""The files a run writes beside its input (rejects, in-doubt rows): which paths it may take, and how.

The rule: crmload never deletes or truncates a file it did not create for this run.
- An output path that is the input, the journal or the other output file is refused, always (resolved
  paths compared, and ``os.path.samefile`` for links).
- An existing file there that is not a crmload output file is refused unless ``force``. Ours is recognised
  by its header: the ``crmload_line``, ``crmload_phase`` and ``crmload_error`` columns after the data ones.
- Nothing is removed at start. An earlier run's file is replaced only when this run writes its first row
  there; a run that writes none leaves it as it was, and the summary names it as not this run's. A new file
  is born 0600 beside its target (``mkstemp``) and renamed over it, so the old inode (a hard link the user
  kept, say) is never truncated.

Encodings: outputs are written in the input's encoding, so ``--encoding`` reads them back; ``utf-8-sig``
writes a BOM only if the input had one. Values keep undecodable input bytes as they were read; text the
encoding cannot carry (in an error message) is written as a backslash escape rather than failing the run.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Mapping
from pathlib import Path

from crmload.errors import ConfigError

__all__ = ["ERRORS", "check_output_path", "is_output_file", "output_encoding", "output_paths", "same_path"]

#: The codec error handler outputs are written with (registered below).
ERRORS = "crmload.outfile"

#: Columns that mark a file as one of ours (a rejects or in-doubt file).
_SIGNATURE = frozenset({"crmload_line", "crmload_phase", "crmload_error"})
_HEAD_BYTES = 64 * 1024


def _outfile_errors(exc: UnicodeError) -> tuple[str | bytes, int]:
    """surrogateescape for undecodable input bytes; a backslash escape for any other unencodable text."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start : exc.end]
    if all("\udc80" <= ch <= "\udcff" for ch in text):
        return bytes(ord(ch) - 0xDC00 for ch in text), exc.end
    return text.encode("ascii", "backslashreplace").decode("ascii"), exc.end


codecs.register_error(ERRORS, _outfile_errors)


def output_encoding(encoding: str, source: str | os.PathLike[str] | None) -> str:
    """The encoding to write outputs of ``source`` in: ``encoding``, with a BOM only if the input had one."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise ConfigError(f"unknown encoding {encoding!r}") from exc
    if name != "utf-8-sig":
        return encoding
    head = b""
    if source is not None:
        try:
            with open(source, "rb") as fh:
                head = fh.read(len(codecs.BOM_UTF8))
        except OSError:
            head = b""
    return encoding if head == codecs.BOM_UTF8 else "utf-8"


def is_output_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a file whose header ends with crmload's columns (a rejects or in-doubt file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError:
        return False
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            text = head[len(bom) :].decode(codec, "replace")
            break
    else:
        # The signature is ASCII, which every encoding crmload writes to keeps as is.
        text = head.removeprefix(codecs.BOM_UTF8).decode("latin-1")
    line = text.split("\n", 1)[0].rstrip("\r")
    after = line.find("crmload_line")
    delimiters = {",", ";", "\t", "|"}
    if 0 <= after < len(line) - len("crmload_line"):
        delimiters.add(line[after + len("crmload_line")])
    for delimiter in delimiters:
        fields = next(csv.reader([line], delimiter=delimiter), [])
        tail: set[str] = set()
        for name in reversed(fields):
            if not name.startswith("crmload_"):
                break
            tail.add(name)
        if tail >= _SIGNATURE:
            return True
    return False


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name the same file: same resolved path, or the same inode."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(
    path: str | os.PathLike[str],
    *,
    flag: str = "--rejects",
    protected: Mapping[str, str | os.PathLike[str] | None] | None = None,
    force: bool = False,
) -> bool:
    """Refuse an output path crmload must not write; return True when an earlier file of ours is there.

    Args:
        path: the output file.
        flag: how the message names it.
        protected: ``{what: path}`` files it must never be (the input, the journal, the other output).
        force: allow replacing an existing file that is not one of ours.
    """
    p = Path(path)
    for what, other in (protected or {}).items():
        if other is not None and str(other) != ":memory:" and same_path(p, other):
            raise ConfigError(f"{flag} {p} is the {what}; choose another path")
    if p.is_dir():
        raise ConfigError(f"{flag} {p} is a directory")
    if not p.parent.is_dir():
        raise ConfigError(f"{flag} {p}: no such directory {p.parent}")
    if not p.exists():
        return False
    if is_output_file(p):
        return True
    if not force:
        raise ConfigError(
            f"{flag} {p} exists and is not a crmload rejects file; refusing to replace it "
            "(choose another path, or --force to replace it)"
        )
    return False


def output_paths(
    source: Path,
    rejects: str | None,
    journal: Path,
    *,
    dry_run: bool,
    force: bool,
    tag: str = "",
) -> tuple[Path | None, Path | None]:
    """The CLI's ``(rejects, in-doubt)`` paths for ``source``, checked; ConfigError for one it must not take.

    A dry run writes nothing unless ``--rejects`` names a path; it never has in-doubt rows. ``tag`` goes
    into the default names (``FILE.shard-2-of-4.rejects.csv``).
    """
    base = source.with_suffix("") if source.suffix.lower() == ".csv" else source
    base = Path(f"{base}{tag}")
    rej = Path(rejects) if rejects else None if dry_run else Path(f"{base}.rejects.csv")
    doubt = None if dry_run else Path(f"{base}.in-doubt.csv")
    run_files = {"input": source, "journal": journal, "journal's WAL": Path(f"{journal}-wal")}
    if rej is not None:
        check_output_path(rej, protected={**run_files, "in-doubt file": doubt}, force=force)
    if doubt is not None:
        check_output_path(
            doubt, flag="in-doubt file", protected={**run_files, "rejects file": rej}, force=force
        )
    return rej, doubt
