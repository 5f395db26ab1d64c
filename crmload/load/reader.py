"""The Loader's reader side: read rows in chunks, map them, journal them pending, queue them for the workers.

The calling thread reads ``read_chunk`` rows at a time: rows an earlier run settled are skipped (the in-doubt
ones written to this run's in-doubt file), unreadable and unmappable rows are rejected (phase read/map), a
key that an earlier row already has is rejected (the first row wins), and the rest are journalled pending in
one commit, then queued one by one; the workers cut them into batches (``load/worker.py``).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crmload.errors import InputError
from crmload.load.mapping import Mapped
from crmload.load.source import CsvSource, SourceRow
from crmload.load.worker import IN_DOUBT

if TYPE_CHECKING:
    from crmload.load.journal import Journal
    from crmload.load.mapping import Mapper
    from crmload.load.progress import Progress
    from crmload.load.rejects import RejectsWriter
    from crmload.load.shard import Shard

__all__ = ["HOLD", "ReadOps", "RowGate"]

#: A ``RowGate``'s answer for a row that is not this run's: left unjournalled (a later run takes it).
HOLD = object()
#: ``gate(line, mapped) -> None | HOLD | str``: None sends the row, ``HOLD`` leaves it for a later run, a
#: string rejects it (phase "parent") with that reason. It is asked first with ``mapped=None``, before the row
#: is mapped (only ``HOLD`` counts then: a row held by its line costs no mapping), then with the mapped row.
#: ``crmload.plan`` orders and cascades through it.
RowGate = Callable[[int, Mapped | None], object]

_IN_DOUBT_EARLIER = f"in doubt since an earlier run: {IN_DOUBT}"


@dataclass(slots=True)
class _Work:
    line: int
    values: Mapping[str, Any]
    mapped: Mapped
    digest: int | None = None
    resent: bool = False  # an earlier run began sending it and recorded no answer


class _Fatal(Exception):
    """Internal: a worker met an error that stops the run."""


def _rows(items: Iterable[Mapping[str, Any]] | CsvSource) -> Iterator[SourceRow]:
    """Source rows as they are; any other mapping numbered from 1 (its "line")."""
    iterable: Iterable[Mapping[str, Any] | SourceRow] = items
    for n, item in enumerate(iterable, 1):
        if isinstance(item, SourceRow):
            yield item
        else:
            yield SourceRow(n, dict(item))


class ReadOps:
    """Mixin of ``Loader``: the reader side (chunks, mapping, pending rows, the queue)."""

    if TYPE_CHECKING:
        mode: str
        mapper: Mapper
        journal: Journal | None
        in_doubt: RejectsWriter | None
        progress: Progress
        dry_run: bool
        read_chunk: int
        shard: Shard | None
        gate: RowGate | None
        _resume: bool
        _skipped: int
        _seen: int
        _other_shards: int
        _read_all: bool
        _source: CsvSource | None
        _stop: threading.Event

        def _reject(  # noqa: PLR0917
            self,
            line: int,
            key: str | None,
            phase: str,
            error: str,
            values: Mapping[str, Any],
            column: str | None = None,
            raw: str = "",
            digest: int | None = None,
        ) -> None: ...

    def _read(self, rows: Iterator[SourceRow], work: queue.Queue[_Work | None]) -> None:
        chunk: list[SourceRow] = []
        shard, key = self.shard, self.mapper.key
        for row in rows:
            self._seen += 1
            if shard is not None and not shard.takes(row.line_no, row.values, key, row.error is None):
                self._other_shards += 1  # another shard's row: not read here (load/shard.py)
                continue
            chunk.append(row)
            if len(chunk) >= self.read_chunk:
                try:
                    self._chunk(chunk, work)
                except _Fatal:
                    self._list_earlier_in_doubt(rows)
                    raise
                chunk = []
            if self._stop.is_set():
                self._list_earlier_in_doubt(itertools.chain(chunk, rows))
                return
        if chunk:
            self._chunk(chunk, work)
        self._read_all = True

    def _list_earlier_in_doubt(self, rows: Iterator[SourceRow]) -> None:
        """After a fatal stop, still write the unread rows an earlier run left in doubt to the in-doubt file.

        The file is rewritten by every run; without this a resume that stops early would shorten it.
        """
        if self.in_doubt is None or not self._resume:
            return  # a new run has no journalled rows beyond those it read
        assert self.journal is not None
        while chunk := list(itertools.islice(rows, self.read_chunk)):
            known = self.journal.states(chunk[0].line_no, chunk[-1].line_no)
            for row in chunk:
                if known.get(row.line_no, ("", 0))[0] == "in_doubt":
                    self.in_doubt.write(row.line_no, "send", _IN_DOUBT_EARLIER, row.values)

    def _chunk(self, chunk: list[SourceRow], work: queue.Queue[_Work | None]) -> None:
        """Map a chunk of read rows, journal them pending (one commit), queue them for the workers."""
        assert self.journal is not None
        self.progress.read(len(chunk), self._source.bytes_read if self._source is not None else None)
        known = self.journal.states(chunk[0].line_no, chunk[-1].line_no) if self._resume else {}
        ready: list[_Work] = []
        for row in chunk:
            if self._not_now(row, known.get(row.line_no, (None, 0))[0]):
                continue
            if row.error is not None:
                self._reject(
                    row.line_no,
                    None,
                    "read",
                    _read_error(row),
                    row.values,
                    row.error.column,
                    row.raw,
                    row.digest,
                )
                continue
            try:
                mapped = self.mapper.map(row.line_no, row.values)
                if mapped.id is None and self.mode != "create":
                    raise InputError(f"--mode {self.mode} needs an id: the key or id column is empty")
            except InputError as exc:
                self._reject(row.line_no, None, "map", str(exc), row.values, exc.column, digest=row.digest)
                continue
            if self.gate is not None and self._gated(row, mapped):
                continue
            resent = known.get(row.line_no, (None, 0))[1] > 0
            ready.append(_Work(row.line_no, row.values, mapped, row.digest, resent))
        ready = self._drop_duplicate_keys(ready)
        fresh = [(w.line, w.mapped.key, str(w.mapped.id) if w.mapped.id else None, w.digest) for w in ready]
        self.journal.add_pending([f for f in fresh if f[0] not in known])
        for w in ready:
            if self.dry_run:
                self.journal.settle(w.line, "done", outcome="validated")
                self.progress.add("done")
                continue
            while not self._stop.is_set():
                try:
                    work.put(w, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set():
                raise _Fatal

    def _not_now(self, row: SourceRow, state: str | None) -> bool:
        """True for a row an earlier run settled (skipped; one in doubt is listed in this run's in-doubt file
        again) or one the gate holds by its line alone (before it costs a mapping)."""
        if state in ("done", "rejected", "in_doubt"):
            self._skipped += 1
            if state == "in_doubt" and self.in_doubt is not None:
                self.in_doubt.write(row.line_no, "send", _IN_DOUBT_EARLIER, row.values)
            return True
        return self.gate is not None and self.gate(row.line_no, None) is HOLD

    def _gated(self, row: SourceRow, mapped: Mapped) -> bool:
        """Ask the gate about a row; True when it is not sent this run (held, or rejected by the gate)."""
        assert self.gate is not None
        verdict = self.gate(row.line_no, mapped)
        if isinstance(verdict, str):
            self._reject(row.line_no, mapped.key, "parent", verdict, row.values, digest=row.digest)
        return verdict is HOLD or isinstance(verdict, str)

    def _drop_duplicate_keys(self, ready: list[_Work]) -> list[_Work]:
        """Reject rows whose key an earlier row of the input already has: the first row wins.

        Two concurrent sends of one record would land in an order left to chance.
        """
        assert self.journal is not None
        keys = [w.mapped.key for w in ready if w.mapped.key is not None]
        first = self.journal.lines_of_keys(keys)
        kept: list[_Work] = []
        for w in ready:
            key = w.mapped.key
            if key is not None:
                line = first.setdefault(key, w.line)
                if line != w.line:
                    error = f"duplicate key {key!r}: line {line} has it already"
                    self._reject(w.line, key, "map", error, w.values, digest=w.digest)
                    continue
            kept.append(w)
        return kept


def _read_error(row: SourceRow) -> str:
    assert row.error is not None
    if row.extra:
        shown = ", ".join(repr(x[:40]) for x in row.extra[:5])
        return f"{row.error} (extra fields: {shown})"
    return str(row.error)
