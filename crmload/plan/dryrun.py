"""``migrate --dry-run``: validate every file, map and cross-file reference; send nothing, write nothing.

Each load runs through ``Loader(dry_run=True)`` (the import's own dry run: read, map, check every row), and
every lookup by key to an entity the plan loads is looked up in the plan's ``KeyIndex``: a key no row of the
plan defines is reported (it is trusted on a real run, as import trusts it, so it must exist in CRM).
"""

from __future__ import annotations

from typing import Any

from crmload.load.engine import Loader
from crmload.load.keys import key_id
from crmload.load.mapping import Mapper
from crmload.load.source import CsvSource
from crmload.plan.analysis import Analysis
from crmload.plan.data import KeyIndex
from crmload.plan.summary import LoadResult

__all__ = ["dry_run", "unresolved"]

#: Unresolved lookups listed with their line (all are counted).
_LISTED = 1000


def dry_run(analysis: Analysis) -> list[LoadResult]:
    """Validate every load's rows as import's dry run does; one result per load, in plan order."""
    out = []
    for info in analysis.loads:
        ld = info.spec
        loader = Loader(
            None,
            ld.entity,
            mode=ld.mode,
            mapper=Mapper(ld.entity, spec=info.map_spec, key=info.key),
            dry_run=True,
        )
        try:
            with CsvSource(ld.file, encoding=ld.encoding, delimiter=ld.delimiter) as src:
                summary = loader.run(src)
        finally:
            loader.close()
        out.append(LoadResult(ld.index, ld.label, "create", summary, info.passes))
    return out


def unresolved(analysis: Analysis, index: KeyIndex) -> tuple[int, list[dict[str, Any]]]:
    """Lookups by key to an entity of the plan whose key no row of the plan defines: ``(count, rows)``."""
    count, rows = 0, list[dict[str, Any]]()
    for info in analysis.loads:
        wanted = [(c, e) for c, _a, e in info.lookups if e in index.by_entity]
        if not wanted:
            continue
        trim = info.map_spec.trim
        with CsvSource(info.spec.file, encoding=info.spec.encoding, delimiter=info.spec.delimiter) as src:
            for row in src:
                for column, entity in wanted:
                    text = row.values.get(column) or ""
                    text = text.strip() if trim else text
                    if not text or index.find(entity, key_id(entity, text)) is not None:
                        continue
                    count += 1
                    if len(rows) < _LISTED:
                        rows.append(
                            {
                                "file": info.spec.file.name,
                                "line": row.line_no,
                                "column": column,
                                "error": f"no row of the plan has {entity} key {text!r}",
                            }
                        )
    return count, rows
