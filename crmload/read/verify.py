"""Verify: reconcile a load (its source rows, their mapping and the run's journal) against what CRM holds.

Counts are exact and never come from an aggregate (CRM's fetch count fails above 50,000 records and
TotalRecordCount stops at 5,000): each batch of the run's ids is read back with one RetrieveMultiple whose
condition is ``<primary key> In (ids)`` (id and compared columns only), and ``all_records`` pages the whole
entity id-only to find records no row names.

For every row the journal says is done (or, without a journal, every row whose id the key or an id column
gives) the record must exist (else ``lost``/``missing``). For every row, or a seeded ``sample``, the mapped
values that were sent are compared with what CRM returns after normalising (money and decimal scale, UTC
date-times to the second, option values, lookups by id, trimmed strings, "" = null): each differing
attribute is one ``differs`` discrepancy. In-doubt rows with a known id that CRM holds are ``in_doubt_found``
(the send landed), reported but not a failure; other in-doubt rows (``in_doubt``, unkeyed ones included: only
``--settle --match`` finds those) and ``pending`` rows of an unfinished run fail the verification, as do
``ambiguous`` matches. Rejected rows are counted from the journal and not checked (import reported them).

Memory: the journal's ``line -> (state, id)`` map and, with ``all_records``, the set of expected ids: one
entry per row (~200 bytes), fine up to millions of rows; records are held one batch at a time.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from crmload.errors import CrmLoadError, JournalError
from crmload.load.mapping import Mapper
from crmload.load.source import SourceRow
from crmload.read.values import format_value
from crmload.types import Key, Lookup, Money, Picklist, Status

__all__ = ["DISCREPANCY_COLUMNS", "Discrepancy", "Verifier", "VerifyReport", "read_journal"]

DISCREPANCY_COLUMNS = ("entity", "line", "key", "id", "kind", "field", "sent", "found")
#: Kinds that fail a verification.
FAILING = frozenset({"lost", "missing", "differs", "extra", "unreadable", "in_doubt", "pending", "ambiguous"})


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One finding: which row (line, key, id), what kind, and for ``differs`` the field and both values."""

    entity: str
    line: int | None
    key: str | None
    id: str | None
    kind: str
    field: str = ""
    sent: str = ""
    found: str = ""

    def row(self) -> list[str]:
        """The discrepancy CSV row."""
        return [str(v) if v is not None else "" for v in (getattr(self, c) for c in DISCREPANCY_COLUMNS)]


@dataclass(slots=True, kw_only=True)
class VerifyReport:
    """Counts for one entity: from the journal, from the source, and what CRM was found to hold."""

    entity: str
    rows: int = 0
    journal: dict[str, int] = field(default_factory=dict)
    checked: int = 0
    compared: int = 0
    present: int = 0
    unidentified: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    differing_rows: int = 0
    requests: int = 0

    @property
    def passed(self) -> bool:
        """True when nothing was lost, missing, extra or different."""
        return not any(self.kinds.get(k) for k in FAILING)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object of this entity."""
        out = {k: getattr(self, k) for k in self.__slots__}
        out["result"] = "PASS" if self.passed else "FAIL"
        return out


def read_journal(path: Path) -> dict[int, tuple[str, str | None, str | None]]:
    """``line -> (state, key, crm id)`` from a run's journal, opened read-only (a reader takes no lock)."""
    if not path.is_file():
        raise JournalError(f"no journal at {path}")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT line, state, key, crm_id FROM rows").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read journal {path}: {exc}") from exc
    return {int(line): (str(state), key, crm_id) for line, state, key, crm_id in rows}


def _norm(value: Any) -> Any:  # noqa: PLR0911 - one rule per kind of value
    """What two values must share to count as equal (CRM changes scale, zone and spaces, not meaning)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Lookup):
        return value.id
    if isinstance(value, Key):
        return value.id
    if isinstance(value, (Picklist, Status)):
        return value.value
    if isinstance(value, Money):
        return Decimal(value.value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).replace(microsecond=0)
    if isinstance(value, float):
        return round(value, 9)
    return value


@dataclass(slots=True)
class _Item:
    line: int
    key: str | None
    id: UUID
    attrs: dict[str, Any] | None  # None: presence only
    in_doubt: bool = False


class Verifier:
    """Verify one entity's load; ``sink`` receives each discrepancy as it is found.

    Args:
        client: a ``CrmClient`` (either endpoint).
        entity: the entity loaded.
        mapper: the import's mapping (same map file and key), so the values compared are the ones sent.
        journal: the run's journal (``line -> (state, key, id)``, see ``read_journal``), or None.
        sample: compare the content of about this many rows (seeded), not all; presence is checked for all.
        batch: ids per RetrieveMultiple (an ``In`` condition).
        all_records: also page the whole entity id-only and report records no row names (``extra``).
    """

    def __init__(
        self,
        client: Any,
        entity: str,
        *,
        mapper: Mapper,
        journal: Mapping[int, tuple[str, str | None, str | None]] | None = None,
        sample: int | None = None,
        batch: int = 500,
        all_records: bool = False,
        seed: int = 0,
    ) -> None:
        self.client = client
        self.entity = entity.lower()
        self.mapper = mapper
        self.journal = journal
        self.batch = batch
        self.all_records = all_records
        self.pk = mapper.primary_key
        done = sum(1 for s, _, _ in journal.values() if s == "done") if journal is not None else None
        self._rate = 1.0 if sample is None else min(1.0, sample / max(1, done or sample))
        self._rng = random.Random(seed)
        self._expected: set[UUID] = set()

    def run(self, rows: Iterable[SourceRow], sink: Callable[[Discrepancy], None]) -> VerifyReport:
        """Check every row; returns the counts. Raises ``CrmLoadError`` when CRM cannot be read."""
        report = VerifyReport(entity=self.entity)
        if self.journal is not None:
            for state, _, _ in self.journal.values():
                report.journal[state] = report.journal.get(state, 0) + 1
        before = int(self.client.stats().get("requests", 0) or 0)
        pending: list[_Item] = []
        for row in rows:
            report.rows += 1
            item = self._item(row, report, sink)
            if item is None:
                continue
            if self.all_records:
                self._expected.add(item.id)
            pending.append(item)
            if len(pending) >= self.batch:
                self._check(pending, report, sink)
                pending = []
        if pending:
            self._check(pending, report, sink)
        if self.all_records:
            self._extra(report, sink)
        report.requests = int(self.client.stats().get("requests", 0) or 0) - before
        return report

    def _item(  # noqa: PLR0911 - one exit per journal state
        self, row: SourceRow, report: VerifyReport, sink: Callable[[Discrepancy], None]
    ) -> _Item | None:
        state, jkey, jid = (self.journal or {}).get(row.line_no, (None, None, None))
        if state == "pending":  # an unfinished run: import --resume sends it
            self._emit(report, sink, Discrepancy(self.entity, row.line_no, jkey, jid, "pending"))
            return None
        if self.journal is not None and state not in ("done", "in_doubt"):
            return None  # rejected: import reported it, and nothing was written
        if row.error is not None or not row.values:
            if state == "done":
                sink(Discrepancy(self.entity, row.line_no, jkey, jid, "unreadable"))
                report.kinds["unreadable"] = report.kinds.get("unreadable", 0) + 1
            return None
        try:
            mapped = self.mapper.map(row.line_no, row.values)
        except CrmLoadError:
            return None  # import rejected it too; the journal says so
        rid = UUID(jid) if jid else mapped.id
        if rid is None and state == "in_doubt":  # unkeyed: only --settle --match can find its record
            self._emit(report, sink, Discrepancy(self.entity, row.line_no, jkey, None, "in_doubt"))
            return None
        if rid is None:
            if state == "done" or self.journal is None:
                report.unidentified += 1  # an unkeyed create without a journal: nothing names its record
            return None
        compare = state != "in_doubt" and self._rng.random() < self._rate
        return _Item(
            row.line_no, jkey or mapped.key, rid, mapped.attrs if compare else None, state == "in_doubt"
        )

    def _check(self, items: list[_Item], report: VerifyReport, sink: Callable[[Discrepancy], None]) -> None:
        compared = [it for it in items if it.attrs is not None]
        columns = {self.pk}
        for it in compared:
            columns.update(it.attrs or ())
        if len(compared) == len(items):  # every row compared: one read with the columns
            found = self._read(items, sorted(columns))
        else:  # a sample: ids only for presence, the columns only for the sampled rows
            found = self._read(items, [self.pk])
            found.update(self._read(compared, sorted(columns)) if compared else {})
        for it in items:
            rec = found.get(it.id)
            if it.in_doubt:
                kind = "in_doubt_found" if rec is not None else "in_doubt"
                self._emit(report, sink, Discrepancy(self.entity, it.line, it.key, str(it.id), kind))
                continue
            report.checked += 1
            if rec is None:
                kind = "lost" if self.journal is not None else "missing"
                self._emit(report, sink, Discrepancy(self.entity, it.line, it.key, str(it.id), kind))
                continue
            report.present += 1
            if it.attrs is None:
                continue
            report.compared += 1
            differs = False
            for attr, sent in it.attrs.items():
                if attr == self.pk:
                    continue
                got = rec.get(attr)
                if _norm(sent) != _norm(got):
                    differs = True
                    d = Discrepancy(
                        self.entity, it.line, it.key, str(it.id), "differs", attr, _text(sent), _text(got)
                    )
                    self._emit(report, sink, d)
            report.differing_rows += differs

    def _read(self, items: list[_Item], columns: list[str]) -> dict[UUID, dict[str, Any]]:
        """id -> record of the ``items`` CRM holds: one RetrieveMultiple ``pk In (ids)``."""
        ids = [it.id for it in items]
        found = {}
        for rec in self.client.retrieve_multiple(
            self.entity, where={self.pk: ids}, columns=columns, page_size=max(len(ids), 1)
        ):
            value = rec.get(self.pk)
            found[getattr(value, "id", value)] = rec
        return found

    def _extra(self, report: VerifyReport, sink: Callable[[Discrepancy], None]) -> None:
        for rec in self.client.retrieve_multiple(self.entity, columns=[self.pk], page_size=5000):
            value = rec.get(self.pk)
            rid = getattr(value, "id", value)
            if rid not in self._expected:
                self._emit(report, sink, Discrepancy(self.entity, None, None, str(rid), "extra"))

    @staticmethod
    def _emit(report: VerifyReport, sink: Callable[[Discrepancy], None], d: Discrepancy) -> None:
        report.kinds[d.kind] = report.kinds.get(d.kind, 0) + 1
        sink(d)


def _text(value: Any) -> str:
    try:
        return format_value(value)
    except CrmLoadError:
        return str(value)
