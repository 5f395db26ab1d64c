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

File identity (``crmload.load.identity``): size and a head+tail sha256, checked at open, and a CRC-32 per row
(``rows.digest``) that ``--resume`` compares with the file before anything is sent (``verify_source``). A
journal without digests (an older crmload) is refused: ``--restart``.

One connection is shared by all threads under a lock: SQLite serialises writers anyway, and the lock keeps
batches whole.

One run per journal: ``JOURNAL.lock`` (``runlock``) is held from open to close, taken before ``restart``
erases anything. ``--resume`` may move a run to a corrected URL (``retarget``).

Every ``sqlite3`` error becomes a ``JournalError`` naming the file. A failed write rolls back what was not
committed and breaks the journal for writing; reads still answer (for the summary), ``close`` is quiet.
The rows of the lost transaction are pending again, and ``--resume`` settles them as after a crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from crmload.errors import JournalError
from crmload.load._jfile import connect, hint, remove_db
from crmload.load.identity import FileIdentity, file_identity, first_change
from crmload.load.retarget import move_run
from crmload.load.runlock import RunLock
from crmload.load.shard import shard_mismatch

__all__ = ["STATES", "FileIdentity", "Journal", "Settled", "Target", "file_identity", "public_url"]

log = logging.getLogger(__name__)

STATES = ("pending", "done", "rejected", "in_doubt")
#: One sent row's end, for ``Journal.settle_many``: ``(line, state or None to keep it, crm_id, outcome,
#: phase, error, forget_attempts)``; ``forget_attempts`` marks a row CRM is known not to have applied.
Settled = tuple[int, str | None, str | None, str | None, str | None, str | None, bool]
_SETTLE_MANY = (
    "UPDATE rows SET state = COALESCE(?, state), crm_id = COALESCE(?, crm_id), outcome = ?, phase = ?, "
    "error = ?, attempts = CASE WHEN ? THEN 0 ELSE attempts END WHERE line = ?"
)
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
    error TEXT,
    digest INTEGER
);
CREATE INDEX IF NOT EXISTS rows_state ON rows(state) WHERE state != 'done';
CREATE INDEX IF NOT EXISTS rows_key ON rows(key) WHERE key IS NOT NULL;
"""


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
    #: ``load/shard.py``: ``"2/4"`` for ``--shard 2/4``; None (and absent from the meta) when unsharded.
    shard: str | None = None

    def describe(self) -> str:
        """One line for messages."""
        shard = f", shard {self.shard}" if self.shard else ""
        return f"{self.entity} in {self.org} at {self.url} ({self.mode}{shard})"


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
        run_lock: RunLock | None = None,
        commit_every: int = 200,
        commit_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:" and run_lock is None:
            run_lock = RunLock.acquire(self.path)
        self._run_lock = run_lock
        try:
            self._db = connect(self.path, _SCHEMA)
        except BaseException:
            if run_lock is not None:
                run_lock.release()
            raise
        self._no_writes: JournalError | None = None
        self._lock = threading.Lock()
        self._commit_every = commit_every
        self._interval = commit_interval_s
        self._clock = clock
        self._dirty = 0
        self._last_commit = clock()
        self.commits = 0

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
        retarget: bool = False,
        **kwargs: float,
    ) -> Journal:
        """Open the journal for a run of ``source`` into ``target``; refuse what would mix two runs.

        A journal that already holds this run opens only with ``resume`` (continue) or ``restart`` (erased
        first). A journal of another run opens only with ``restart``, except that ``resume`` may move it to
        another URL (see the module docstring; ``retarget`` forces that move).
        Raises ``JournalBusyError`` while another process holds the journal, before anything is erased.
        """
        p = Path(path)
        run_lock = None
        if str(path) != ":memory:":
            run_lock = RunLock.acquire(p)
            if restart:
                try:
                    remove_db(p)
                except BaseException:
                    run_lock.release()
                    raise
        journal = cls(path, run_lock=run_lock, **kwargs)  # type: ignore[arg-type]
        try:
            journal._claim(target, source, resume=resume, retarget=retarget)
        except BaseException:
            journal.close()
            raise
        return journal

    def _claim(
        self, target: Target, source: FileIdentity | None, *, resume: bool, retarget: bool = False
    ) -> None:
        meta = self.meta()
        fields = {f"target.{k}": str(v) for k, v in asdict(target).items() if k != "shard" or v is not None}
        if source is not None:
            fields.update({f"source.{k}": str(v) for k, v in asdict(source).items()})
        if not self._has_digests():
            if meta:
                raise JournalError(
                    f"journal {self.path} was made by an older crmload (it cannot check the input row by "
                    "row); --restart to begin again"
                )
            with self._lock, self._guard("writing its schema"):
                self._db.execute("ALTER TABLE rows ADD COLUMN digest INTEGER")
        if not meta:
            fields["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            self.write_meta(list(fields.items()))
            return
        theirs = {k: v for k, v in meta.items() if k.startswith("target.")}
        ours = {k: v for k, v in fields.items() if k.startswith("target.")}
        refusal = shard_mismatch(self.path, theirs.get("target.shard"), ours.get("target.shard"))
        if refusal:
            raise JournalError(refusal)
        moved = theirs.get("target.url") != ours["target.url"]
        if moved and resume:  # only the URL may change, on resume; move_run decides whether it may
            theirs["target.url"] = ours["target.url"]
        same_file = source is None or (
            meta.get("source.size") == str(source.size)
            and meta.get("source.fingerprint") == source.fingerprint
        )
        where = (
            f"{meta.get('source.path', 'the input')} into {meta.get('target.entity')} "
            f"at {meta.get('target.url')}"
        )
        if theirs != ours:
            moves = (
                "; --resume moves it to this --url"
                if {**theirs, "target.url": ours["target.url"]} == ours
                else ""
            )
            raise JournalError(
                f"journal {self.path} belongs to another run ({where}, mode {meta.get('target.mode')}, "
                f"key {meta.get('target.key')}){moves}; use another --journal, or --restart to begin again"
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
        if moved:  # resume is set here
            move_run(self, meta, target.url, force=retarget)

    def sent_counts(self) -> tuple[int, int]:
        """``(done rows with a send outcome, rows in doubt)``: what a run has sent that may have landed."""
        with self._lock, self._guard("reading"):
            sent, doubt = self._db.execute(
                "SELECT coalesce(sum(state = 'done' AND outcome IS NOT NULL), 0), "
                "coalesce(sum(state = 'in_doubt'), 0) FROM rows"
            ).fetchone()
        return int(sent), int(doubt)

    def write_meta(self, items: list[tuple[str, str]]) -> None:
        """Set ``meta`` entries and commit (the run's target, identity and history)."""
        with self._lock, self._guard("writing its meta"):
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", items)
            self._db.execute("COMMIT")

    def _has_digests(self) -> bool:
        with self._lock, self._guard("reading"):
            return any(col[1] == "digest" for col in self._db.execute("PRAGMA table_info(rows)"))

    def meta(self) -> dict[str, str]:
        """Return the run's recorded target and source identity."""
        with self._lock, self._guard("reading"):
            return dict(self._db.execute("SELECT k, v FROM meta").fetchall())

    # -- failures --------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Turn a SQLite error into a ``JournalError`` naming the file (callers hold ``self._lock``)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._fail(exc, doing) from exc

    def _fail(self, exc: sqlite3.Error, doing: str) -> JournalError:
        """Roll back what was not committed and break the journal for writing; return the error to raise."""
        error = JournalError(f"journal {self.path}: {doing} failed: {exc}; {hint(exc)}")
        if doing == "reading":  # other threads' writes may be in the open transaction: leave it be
            return error
        if self._db.in_transaction:  # SQLite may have rolled back already; if not, do it now
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
        self._no_writes = self._no_writes or error
        self._dirty = 0
        return error

    def _check_writable(self) -> None:
        if self._no_writes is not None:
            raise self._no_writes

    # -- writing ---------------------------------------------------------------------------------------------
    def _maybe_commit(self, force: bool = False, rows: int = 1) -> None:
        self._dirty += rows
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
            self._check_writable()
            try:  # inline, not _guard: this runs twice per row
                if not self._db.in_transaction:
                    self._db.execute("BEGIN")
                self._db.execute(sql, args)
                self._maybe_commit(durable)
            except sqlite3.Error as exc:
                raise self._fail(exc, "writing") from exc

    def add_pending(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Record ``(line, key, crm_id)`` or ``(line, key, crm_id, digest)`` rows as pending and commit.

        They are about to be queued to send.
        """
        if not rows:
            return
        sql = (
            "INSERT OR REPLACE INTO rows (line, key, crm_id, state, digest) VALUES (?, ?, ?, 'pending', ?)"
            if len(rows[0]) == 4
            else "INSERT OR REPLACE INTO rows (line, key, crm_id, state) VALUES (?, ?, ?, 'pending')"
        )
        with self._lock, self._guard("writing"):
            self._check_writable()
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            self._db.executemany(sql, rows)
            self._commit(self._clock())

    def mark_sending(self, line: int, *, durable: bool) -> None:
        """Count one send attempt of ``line``; ``durable`` commits it before returning (unkeyed Creates)."""
        self._write("UPDATE rows SET attempts = attempts + 1 WHERE line = ?", (line,), durable=durable)

    def mark_sending_many(self, lines: Sequence[int], *, durable: bool) -> None:
        """Count one send attempt of every row of a batch, in one write; ``durable`` commits it first."""
        with self._lock:
            self._check_writable()
            try:
                if not self._db.in_transaction:
                    self._db.execute("BEGIN")
                self._db.executemany(
                    "UPDATE rows SET attempts = attempts + 1 WHERE line = ?", [(line,) for line in lines]
                )
                self._maybe_commit(durable, len(lines))
            except sqlite3.Error as exc:
                raise self._fail(exc, "writing") from exc

    def settle_many(self, rows: Sequence[Settled], *, commit: bool) -> None:
        """Record the ends of a batch's rows in one transaction; ``commit`` commits it now.

        Without ``commit`` the rows join the grouped commits (every ``commit_every`` rows or
        ``commit_interval_s``), as single rows do.
        """
        if not rows:
            return
        for row in rows:
            if row[1] is not None and row[1] not in STATES:
                raise ValueError(f"unknown journal state {row[1]!r}")
        args = [(r[1], r[2], r[3], r[4], r[5], r[6], r[0]) for r in rows]  # line goes last, in WHERE
        with self._lock:
            self._check_writable()
            try:
                if not self._db.in_transaction:
                    self._db.execute("BEGIN")
                self._db.executemany(_SETTLE_MANY, args)
                self._maybe_commit(commit, len(rows))
            except sqlite3.Error as exc:
                raise self._fail(exc, "writing") from exc

    def reject(
        self, line: int, key: str | None, phase: str, error: str, *, digest: int | None = None
    ) -> None:
        """Record ``line`` as rejected in ``phase`` (read, map, send) with its reason (and record digest)."""
        self._write(
            "INSERT INTO rows (line, key, state, phase, error, digest) VALUES (?, ?, 'rejected', ?, ?, ?) "
            "ON CONFLICT(line) DO UPDATE SET state='rejected', phase=excluded.phase, error=excluded.error, "
            "digest=COALESCE(excluded.digest, digest)",
            (line, key, phase, error, digest),
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
        """Commit whatever is written; raise the journal's ``JournalError`` if a write failed before."""
        with self._lock, self._guard("committing"):
            self._check_writable()
            self._commit(self._clock())

    # -- reading ---------------------------------------------------------------------------------------------
    def states(self, first: int, last: int) -> dict[int, tuple[str, int]]:
        """Return ``{line: (state, attempts)}`` for journalled lines in ``[first, last]``."""
        with self._lock, self._guard("reading"):
            cur = self._db.execute(
                "SELECT line, state, attempts FROM rows WHERE line BETWEEN ? AND ?", (first, last)
            )
            return {line: (state, attempts) for line, state, attempts in cur}

    def lines_of_keys(self, keys: list[str]) -> dict[str, int]:
        """Return ``{key: first line}`` for ``keys`` already held by a row that is not rejected."""
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        with self._lock, self._guard("reading"):
            # Only "?" placeholders are formatted in; the keys travel as parameters.
            sql = "SELECT key, min(line) FROM rows WHERE state != 'rejected' AND key IN ({}) GROUP BY key"
            cur = self._db.execute(sql.format(marks), keys)
            return {key: int(line) for key, line in cur}

    def maybe_sent(self) -> list[tuple[int, str | None, str | None, str]]:
        """Rows that may have reached CRM without a recorded answer: ``(line, key, crm_id, state)``."""
        with self._lock, self._guard("reading"):
            return self._db.execute(
                "SELECT line, key, crm_id, state FROM rows WHERE (state = 'pending' AND attempts > 0) "
                "OR (state = 'in_doubt' AND crm_id IS NOT NULL) ORDER BY line"
            ).fetchall()

    def rows(self, state: str, limit: int = 1000) -> Iterator[tuple[int, str | None, str | None]]:
        """Yield ``(line, key, error)`` of rows in ``state``, in line order."""
        with self._lock, self._guard("reading"):
            found = self._db.execute(
                "SELECT line, key, error FROM rows WHERE state = ? ORDER BY line LIMIT ?", (state, limit)
            ).fetchall()
        yield from found

    def digests(self, batch: int = 5000) -> Iterator[tuple[int, int]]:
        """Yield ``(line, digest)`` of the journalled rows that have one, in line order."""
        after = 0
        while True:
            with self._lock, self._guard("reading"):
                found = self._db.execute(
                    "SELECT line, digest FROM rows WHERE line > ? AND digest IS NOT NULL "
                    "ORDER BY line LIMIT ?",
                    (after, batch),
                ).fetchall()
            yield from found
            if len(found) < batch:
                return
            after = found[-1][0]

    def verify_source(self, records: Iterable[tuple[int, int]], name: str) -> None:
        """Refuse the input if a journalled record changed: ``records`` are its ``(line, digest)`` now.

        Raises ``JournalError`` naming the first journalled line whose record is gone or differs
        (``identity.first_change``).
        """
        changed = first_change(self.digests(), records)
        if changed is not None:
            raise JournalError(
                f"the input file changed since journal {self.path} was made: line {changed[0]} of {name} "
                f"{changed[1]}; nothing was sent. --restart to load it as a new run (or restore the file)"
            )

    def unsettled(self) -> dict[int, tuple[str, str | None]]:
        """``{line: (state, error)}`` of every row not done: rejected, in doubt or pending (for a cascade)."""
        with self._lock, self._guard("reading"):
            found = self._db.execute("SELECT line, state, error FROM rows WHERE state != 'done'").fetchall()
        return {int(line): (state, error) for line, state, error in found}

    def forget_rejected(self, phase: str) -> int:
        """Remove the rows rejected in ``phase``, so the next run reads them as new; return how many.

        A plan's cascade rejects (phase "parent") become sendable again once their parent is fixed.
        """
        with self._lock, self._guard("writing"):
            self._check_writable()
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            cur = self._db.execute("DELETE FROM rows WHERE state = 'rejected' AND phase = ?", (phase,))
            self._commit(self._clock())
        return int(cur.rowcount)

    def counts(self) -> dict[str, int]:
        """Return rows per state, plus ``read`` (all rows) and ``already_present``."""
        with self._lock, self._guard("reading"):
            found = dict(self._db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
            present = self._db.execute(
                "SELECT count(*) FROM rows WHERE outcome = 'already_present'"
            ).fetchone()[0]
        out = {s: int(found.get(s, 0)) for s in STATES}
        out["read"] = sum(out.values())
        out["already_present"] = int(present)
        return out

    def end_run(self) -> None:
        """Release the run lock after ``flush()``, keeping the file open for reading (a summary, a caller).

        Writes are refused from here on: another run may now hold the journal.
        """
        with self._lock:
            try:
                if self._no_writes is None:
                    # flush() has just reported any failure; this commit only covers a stray late write.
                    with contextlib.suppress(JournalError), self._guard("committing"):
                        self._commit(self._clock())
                    self._no_writes = self._no_writes or JournalError(
                        f"journal {self.path}: its run has ended; open it again to write"
                    )
            finally:
                if self._run_lock is not None:
                    self._run_lock.release()

    def close(self) -> None:
        """Commit, close and release the run lock; a broken journal closes quietly (its error was raised)."""
        with self._lock:
            try:
                if self._no_writes is None:
                    with self._guard("committing"):
                        self._commit(self._clock())
            finally:
                self._db.close()
                if self._run_lock is not None:
                    self._run_lock.release()
