"""The journal's SQLite file: opening it (0600, WAL), erasing it, and what to tell a user when SQLite fails.

Every failure here is a ``JournalError`` that names the file; no ``sqlite3`` or ``OSError`` leaves.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from crmload.errors import JournalError

__all__ = ["connect", "hint", "remove_db"]


def remove_db(path: Path) -> None:
    """Erase a journal and its -wal and -shm files (``--restart``)."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise JournalError(f"cannot erase journal {path}{suffix}: {exc.strerror or exc}") from exc


def hint(exc: sqlite3.Error) -> str:
    """What a user can do about a SQLite error, from its message (stable across SQLite versions)."""
    text = str(exc).lower()
    if "full" in text or "i/o" in text:
        return "is the disk full? Free space first"
    if "malformed" in text or "not a database" in text:
        return (
            "the file is damaged (truncated or overwritten): crmload will not guess which rows it held. "
            "Keep it for inspection, check CRM, then use another --journal or --restart"
        )
    if "readonly" in text or "unable to open" in text:
        return "the journal and its directory must be writable by this user"
    return "--resume continues the run once this is fixed"


def connect(path: str, schema: str) -> sqlite3.Connection:
    """Open (creating it 0600) and set up the journal at ``path``; ``":memory:"`` for dry runs."""
    if path != ":memory:":
        try:
            # Create the file 0600 ourselves: sqlite3 would create it with the umask's mode.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as exc:
            raise JournalError(f"cannot open journal {path}: {exc.strerror or exc}") from exc
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
    except sqlite3.Error as exc:
        db.close()
        if "not a database" in str(exc):
            raise JournalError(f"{path} is not a crmload journal: {exc}") from exc
        # SQLite itself notices a file shorter than its header says (a truncated journal): "malformed".
        raise JournalError(f"cannot open journal {path}: {exc}; {hint(exc)}") from exc
    return db
