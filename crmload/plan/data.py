"""What a plan learns from the data before sending: which row defines which key, and self-reference depth.

``KeyIndex`` maps every keyed row's deterministic id (``key_id(entity, key)``, what a lookup by key sends) to
``(load, line)``: a child's lookup value then names its parent row without a query, for the cascade and for
``--dry-run``'s cross-file check. Memory: one entry per keyed row of a load that some lookup points at.

``levels`` sorts a self-referencing file parent-first: level 0 rows have no parent in the file, level k rows
point only at rows of levels < k. It returns None when the data is cyclic (A -> B -> A, or a row that is its
own parent): then the plan leaves the lookup empty on create and sets it in an update pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from crmload.load.keys import key_id
from crmload.load.source import CsvSource
from crmload.plan.spec import LoadSpec

__all__ = ["KeyIndex", "SelfRows", "levels", "read_keys"]

#: One row of a self-referencing file: ``(line, own id, ids of its parents in this entity)``.
SelfRow = tuple[int, UUID, tuple[UUID, ...]]


@dataclass(slots=True)
class KeyIndex:
    """``id -> (load, line)`` of the keyed rows of the plan, per entity (the first row of a key wins)."""

    by_entity: dict[str, dict[UUID, tuple[int, int]]] = field(default_factory=dict)

    def add(self, entity: str, ident: UUID, load: int, line: int) -> bool:
        """Record a row; False when an earlier row already has the key (the reader rejects this one)."""
        table = self.by_entity.setdefault(entity, {})
        return table.setdefault(ident, (load, line)) == (load, line)

    def find(self, entity: str, ident: UUID) -> tuple[int, int] | None:
        """The ``(load, line)`` that defines ``ident`` in ``entity``, or None (not a row of this plan)."""
        table = self.by_entity.get(entity)
        return table.get(ident) if table is not None else None

    def ids_of(self, entity: str, load: int, lines: Iterable[int]) -> dict[int, UUID]:
        """``{line: id}`` for the given lines of one load (to ask CRM whether their records exist)."""
        wanted = set(lines)
        table = self.by_entity.get(entity, {})
        return {line: ident for ident, (ld, line) in table.items() if ld == load and line in wanted}


@dataclass(slots=True)
class SelfRows:
    """The rows of a self-referencing load, with the lines whose key an earlier row already had."""

    rows: list[SelfRow] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)


def read_keys(
    load: LoadSpec,
    key: str,
    index: KeyIndex,
    self_columns: Sequence[str] = (),
    *,
    trim: bool = True,
) -> SelfRows:
    """Read ``load``'s file once: index every row's key; for ``self_columns`` also keep each row's parents."""
    out = SelfRows()
    with CsvSource(load.file, encoding=load.encoding, delimiter=load.delimiter) as src:
        for row in src:
            if row.error is not None:
                continue
            text = (row.values.get(key) or "").strip()
            if not text:
                continue
            ident = key_id(load.entity, text)
            if not index.add(load.entity, ident, load.index, row.line_no):
                out.duplicates.append(row.line_no)
            if self_columns:
                parents = []
                for col in self_columns:
                    value = row.values.get(col) or ""
                    value = value.strip() if trim else value
                    if value:
                        parents.append(key_id(load.entity, value))
                out.rows.append((row.line_no, ident, tuple(parents)))
    return out


def levels(rows: SelfRows, line_of: dict[UUID, tuple[int, int]], load: int) -> dict[int, int] | None:
    """``{line: level}`` parent-first (Kahn's algorithm), or None when the rows' references form a cycle.

    ``line_of`` is the entity's part of the ``KeyIndex``; a parent id it does not hold for ``load`` is outside
    the file
    (already in CRM, or trusted) and puts no constraint on the order. Rows whose key repeats an earlier
    row's go last, so the first row of a key is always the one the reader keeps.
    """
    children: dict[int, list[int]] = {}
    waiting: dict[int, int] = {}
    for line, _ident, parents in rows.rows:
        waiting[line] = 0
        for pid in parents:
            hit = line_of.get(pid)
            if hit is None or hit[0] != load:
                continue
            children.setdefault(hit[1], []).append(line)
            waiting[line] += 1
    level = {line: 0 for line, count in waiting.items() if count == 0}
    deepest: dict[int, int] = {}
    todo = deque(level)
    while todo:
        line = todo.popleft()
        for child in children.get(line, ()):
            deepest[child] = max(deepest.get(child, 0), level[line] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                level[child] = deepest[child]
                todo.append(child)
    if len(level) < len(waiting):
        return None
    if rows.duplicates:
        last = max(level.values(), default=0)
        for line in rows.duplicates:
            level[line] = last
    return level
