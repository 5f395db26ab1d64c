"""The journal of a run: SQLite in WAL mode, one row per source record, the truth of what happened.

States: ``pending`` (read and accepted, maybe being sent), ``done``, ``rejected`` (with error and phase) and
``in_doubt`` (an unkeyed Create whose answer was lost: it may exist in CRM, so it is never re-sent blindly).
``attempts`` counts sends begun; a pending row with ``attempts > 0`` may have reached CRM.

Durability: the file is created 0600 before SQLite opens it (the -wal and -shm files inherit that mode).
``synchronous=NORMAL`` in WAL mode loses nothing committed when the process is killed, only on power loss, so
commits are cheap. Pending rows are committed before they are queued for sending; an unkeyed Create also
commits its ``attempts`` increment before it is sent, because only that tells a later ``--resume`` that it
may have landed. Results are committed in batches (every ``commit_every`` rows or ``commit_interval_s``): a
result lost to a crash leaves its row pending, and ``--resume`` settles it (keyed rows by Retrieve, or by an
idempotent re-send).

File identity: the input's size and the sha256 of its first and last MiB. That is O(1) for any size, survives
a copy or a move (mtime does not take part), and changes on any append, truncation or edit near either end.

One connection is shared by all threads under a lock: SQLite serialises writers anyway, and the lock keeps
batches whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from crmload.errors import JournalError

__all__ = ["STATES", "FileIdentity", "Journal", "Target", "file_identity", "public_url"]

log = logging.getLogger(__name__)

STATES = ("pending", "done", "rejected", "in_doubt")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    line INTEGER PRIMARY KEY,
    key TEXT,
    crm_id TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    phase TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS rows_state ON rows(state) WHERE state != 'done';
CREATE INDEX IF NOT EXISTS rows_key ON rows(key) WHERE key IS NOT NULL;
"""
_CHUNK = 1024 * 1024


def public_url(url: str) -> str:
    """Return ``url`` without user, password, query or fragment: what may be written to a journal or a log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where a run loads: the CRM endpoint (no credentials), org, entity, mode and key column."""

    url: str
    org: str
    entity: str
    mode: str
    key: str | None = None

    def describe(self) -> str:
        """One line for messages."""
        return f"{self.entity} in {self.org} at {self.url} ({self.mode})"


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


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


class Journal:
    """One run's SQLite journal. Thread-safe. Open with ``Journal.open(...)``; ``":memory:"`` for dry runs.

    Example::

        >>> j = Journal.open(":memory:", Target(url="http://crm", org="O", entity="account", mode="create"))
        >>> j.add_pending([(2, "A-1", None)]); j.settle(2, "done"); j.counts()["done"]
        1
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        commit_every: int = 200,
        commit_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            # Create the file 0600 ourselves: sqlite3 would create it with the umask's mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._commit_every = commit_every
        self._interval = commit_interval_s
        self._clock = clock
        self._dirty = 0
        self._last_commit = clock()
        self.commits = 0
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise JournalError(f"{self.path} is not a crmload journal: {exc}") from exc

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        target: Target,
        source: FileIdentity | None = None,
        *,
        resume: bool = False,
        restart: bool = False,
        **kwargs: float,
    ) -> Journal:
        """Open the journal for a run of ``source`` into ``target``; refuse what would mix two runs.

        A journal that already holds this run opens only with ``resume`` (continue) or ``restart`` (erased
        first).
        A journal of another run opens only with ``restart``.
        """
        p = Path(path)
        if str(path) != ":memory:" and restart:
            _remove_db(p)
        journal = cls(path, **kwargs)  # type: ignore[arg-type]
        try:
            journal._claim(target, source, resume=resume)
        except BaseException:
            journal.close()
            raise
        return journal

    def _claim(self, target: Target, source: FileIdentity | None, *, resume: bool) -> None:
        meta = self.meta()
        fields = {f"target.{k}": str(v) for k, v in asdict(target).items()}
        if source is not None:
            fields.update({f"source.{k}": str(v) for k, v in asdict(source).items()})
        if not meta:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", list(fields.items()))
                self._db.execute(
                    "INSERT INTO meta VALUES ('created', ?)", (time.strftime("%Y-%m-%dT%H:%M:%S"),)
                )
                self._db.execute("COMMIT")
            return
        theirs = {k: v for k, v in meta.items() if k.startswith("target.")}
        ours = {k: v for k, v in fields.items() if k.startswith("target.")}
        same_file = source is None or (
            meta.get("source.size") == str(source.size)
            and meta.get("source.fingerprint") == source.fingerprint
        )
        where = (
            f"{meta.get('source.path', 'the input')} into {meta.get('target.entity')} "
            f"at {meta.get('target.url')}"
        )
        if theirs != ours:
            raise JournalError(
                f"journal {self.path} belongs to another run ({where}, mode {meta.get('target.mode')}, "
                f"key {meta.get('target.key')}); use another --journal, or --restart to begin again"
            )
        if not same_file:
            raise JournalError(
                f"the input file changed since journal {self.path} was made; --restart to begin again"
            )
        if not resume:
            c = self.counts()
            raise JournalError(
                f"this file was already imported into this target (journal {self.path}: {c['done']} done, "
                f"{c['rejected']} rejected, {c['in_doubt']} in doubt, {c['pending']} pending); "
                "use --resume to continue, or --restart to begin again"
            )

    def meta(self) -> dict[str, str]:
        """Return the run's recorded target and source identity."""
        with self._lock:
            return dict(self._db.execute("SELECT k, v FROM meta").fetchall())

    # -- writing ---------------------------------------------------------------------------------------------
    def _maybe_commit(self, force: bool = False) -> None:
        self._dirty += 1
        now = self._clock()
        if force or self._dirty >= self._commit_every or now - self._last_commit >= self._interval:
            self._commit(now)

    def _commit(self, now: float) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")
            self.commits += 1
        self._dirty = 0
        self._last_commit = now

    def _write(self, sql: str, args: tuple[object, ...], *, durable: bool = False) -> None:
        with self._lock:
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            self._db.execute(sql, args)
            self._maybe_commit(durable)

    def add_pending(self, rows: list[tuple[int, str | None, str | None]]) -> None:
        """Record ``(line, key, crm_id)`` rows as pending and commit: they are about to be queued to send."""
        if not rows:
            return
        with self._lock:
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO rows (line, key, crm_id, state) VALUES (?, ?, ?, 'pending')", rows
            )
            self._commit(self._clock())

    def mark_sending(self, line: int, *, durable: bool) -> None:
        """Count one send attempt of ``line``; ``durable`` commits it before returning (unkeyed Creates)."""
        self._write("UPDATE rows SET attempts = attempts + 1 WHERE line = ?", (line,), durable=durable)

    def reject(self, line: int, key: str | None, phase: str, error: str) -> None:
        """Record ``line`` as rejected in ``phase`` (read, map, send) with its reason."""
        self._write(
            "INSERT INTO rows (line, key, state, phase, error) VALUES (?, ?, 'rejected', ?, ?) "
            "ON CONFLICT(line) DO UPDATE SET state='rejected', phase=excluded.phase, error=excluded.error",
            (line, key, phase, error),
        )

    def settle(
        self,
        line: int,
        state: str,
        *,
        crm_id: str | None = None,
        outcome: str | None = None,
        phase: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record the end state of a pending row."""
        if state not in STATES:
            raise ValueError(f"unknown journal state {state!r}")
        self._write(
            "UPDATE rows SET state = ?, crm_id = COALESCE(?, crm_id), outcome = ?, phase = ?, error = ? "
            "WHERE line = ?",
            (state, crm_id, outcome, phase, error, line),
        )

    def reset_attempts(self, line: int) -> None:
        """Mark a pending row as known not applied (a Retrieve found nothing), so it is simply sent again."""
        self._write("UPDATE rows SET attempts = 0 WHERE line = ?", (line,))

    def flush(self) -> None:
        """Commit whatever is written."""
        with self._lock:
            self._commit(self._clock())

    # -- reading ---------------------------------------------------------------------------------------------
    def states(self, first: int, last: int) -> dict[int, tuple[str, int]]:
        """Return ``{line: (state, attempts)}`` for journalled lines in ``[first, last]``."""
        with self._lock:
            cur = self._db.execute(
                "SELECT line, state, attempts FROM rows WHERE line BETWEEN ? AND ?", (first, last)
            )
            return {line: (state, attempts) for line, state, attempts in cur}

    def lines_of_keys(self, keys: list[str]) -> dict[str, int]:
        """Return ``{key: first line}`` for ``keys`` already held by a row that is not rejected."""
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        with self._lock:
            # Only "?" placeholders are formatted in; the keys travel as parameters.
            sql = "SELECT key, min(line) FROM rows WHERE state != 'rejected' AND key IN ({}) GROUP BY key"
            cur = self._db.execute(sql.format(marks), keys)
            return {key: int(line) for key, line in cur}

    def maybe_sent(self) -> list[tuple[int, str | None, str | None, str]]:
        """Rows that may have reached CRM without a recorded answer: ``(line, key, crm_id, state)``."""
        with self._lock:
            return self._db.execute(
                "SELECT line, key, crm_id, state FROM rows WHERE (state = 'pending' AND attempts > 0) "
                "OR (state = 'in_doubt' AND crm_id IS NOT NULL) ORDER BY line"
            ).fetchall()

    def rows(self, state: str, limit: int = 1000) -> Iterator[tuple[int, str | None, str | None]]:
        """Yield ``(line, key, error)`` of rows in ``state``, in line order."""
        with self._lock:
            found = self._db.execute(
                "SELECT line, key, error FROM rows WHERE state = ? ORDER BY line LIMIT ?", (state, limit)
            ).fetchall()
        yield from found

    def counts(self) -> dict[str, int]:
        """Return rows per state, plus ``read`` (all rows) and ``already_present``."""
        with self._lock:
            found = dict(self._db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
            present = self._db.execute(
                "SELECT count(*) FROM rows WHERE outcome = 'already_present'"
            ).fetchone()[0]
        out = {s: int(found.get(s, 0)) for s in STATES}
        out["read"] = sum(out.values())
        out["already_present"] = int(present)
        return out

    def close(self) -> None:
        """Commit and close."""
        with self._lock:
            try:
                self._commit(self._clock())
            finally:
                self._db.close()
