"""Settle in-doubt unkeyed creates by looking their records up by one attribute (``verify --settle --match``).

An unkeyed Create whose answer was lost is *in doubt*: CRM may hold the record under an id nobody knows.
With a ``match`` attribute whose values the source makes unique (``accountnumber``), each in-doubt row's
value is looked up (batched: one RetrieveMultiple with ``match In (values)``):
- exactly one record, not already another journal row's: the row is ``done`` with that id (``settled``);
- none: the create never landed, so the row goes back to ``pending`` with no attempts and ``import --resume``
  sends it again (``resend``);
- several, or a value two in-doubt rows share, or no value: reported (``ambiguous``), never guessed; the row
  stays in doubt.
The journal is written under its run lock (``Journal``), so no import can run at the same time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from crmload.errors import CrmLoadError
from crmload.load.journal import Journal
from crmload.load.mapping import Mapper
from crmload.load.source import SourceRow
from crmload.read.values import format_value
from crmload.read.verify import Discrepancy, read_journal

__all__ = ["SettleReport", "settle"]


@dataclass(slots=True)
class SettleReport:
    """What ``settle`` did with the journal's in-doubt rows."""

    in_doubt: int = 0
    settled: int = 0
    resend: int = 0
    ambiguous: int = 0


def _norm(value: Any) -> Any:
    text = format_value(value)
    return text.strip().casefold()  # SQL Server compares strings case-insensitively


def _lookup(  # noqa: PLR0917 - private step of settle()
    client: Any, entity: str, pk: str, match: str, values: list[Any], claimed: set[UUID], batch: int
) -> dict[Any, list[UUID]]:
    """Normalised match value -> ids of the records that hold it and no done journal row claims."""
    found: dict[Any, list[UUID]] = {}
    for start in range(0, len(values), batch):
        chunk = values[start : start + batch]
        for rec in client.retrieve_multiple(
            entity, where={match: chunk}, columns=[pk, match], page_size=5000
        ):
            rid = rec.get(pk)
            rid = getattr(rid, "id", rid)
            if isinstance(rid, UUID) and rid not in claimed:
                found.setdefault(_norm(rec.get(match)), []).append(rid)
    return found


def settle(
    client: Any,
    entity: str,
    *,
    mapper: Mapper,
    journal: Path,
    rows: Iterable[SourceRow],
    match: str,
    sink: Callable[[Discrepancy], None],
    batch: int = 200,
) -> SettleReport:
    """Settle the in-doubt rows of ``journal`` by ``match``; returns the counts (see the module docstring)."""
    entity, match = entity.lower(), match.lower()
    states = read_journal(journal)
    doubt = {line for line, (state, _, _) in states.items() if state == "in_doubt"}
    claimed = {UUID(cid) for state, _, cid in states.values() if state == "done" and cid}
    report = SettleReport(in_doubt=len(doubt))
    wanted: dict[int, Any] = {}
    for row in rows:
        if row.line_no not in doubt or not row.values:
            continue
        try:
            value = mapper.map(row.line_no, row.values).attrs.get(match)
        except CrmLoadError:
            value = None
        if value in (None, ""):
            report.ambiguous += 1
            sink(Discrepancy(entity, row.line_no, None, None, "ambiguous", match, "", "no value to match"))
            continue
        wanted[row.line_no] = value
    sharing: dict[Any, list[int]] = {}
    for line, value in wanted.items():
        sharing.setdefault(_norm(value), []).append(line)
    values = list({_norm(v): v for v in wanted.values()}.values())
    found = _lookup(client, entity, mapper.primary_key, match, values, claimed, batch)
    j = Journal(journal)
    try:
        for line, value in sorted(wanted.items()):
            key = _norm(value)
            ids = found.get(key, [])
            text = format_value(value)
            if len(sharing[key]) > 1 or len(ids) > 1:
                report.ambiguous += 1
                why = f"{len(ids)} records, {len(sharing[key])} in-doubt rows with this value"
                sink(Discrepancy(entity, line, None, None, "ambiguous", match, text, why))
            elif ids:
                j.settle(line, "done", crm_id=str(ids[0]), outcome="settled by --match")
                report.settled += 1
                sink(Discrepancy(entity, line, None, str(ids[0]), "settled", match, text, text))
            else:
                j.settle(line, "pending")
                j.reset_attempts(line)
                report.resend += 1
                sink(Discrepancy(entity, line, None, None, "resend", match, text, ""))
        j.flush()
    finally:
        j.close()
    return report
