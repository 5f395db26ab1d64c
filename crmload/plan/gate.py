"""The plan's row gate (``load/reader.RowGate``): self-reference levels and the cascade of rejected parents.

The Loader asks the gate about every mapped row before journalling it:
- a row of a level later than this pass's is held (unread this pass; the next pass takes it);
- in an update (links) pass, a row whose own create did not end done is held, and so is one with nothing
  to link;
- a row whose lookup names a row of the plan that was rejected, is in doubt or was never loaded is rejected
  with the parent's line and reason: ``parent account line 42 was rejected: ...``. Its journal phase is
  "parent"; a later ``--resume`` of the plan reads it again (``Journal.forget_rejected``), so it loads once
  its parent is fixed and re-imported.

``Failed`` holds each load's rows that did not end done, ``{load: {line: (state, error)}}``, refreshed by the
runner between passes; a row whose record was found in CRM since (fixed and re-imported) is taken out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from crmload.load.mapping import Mapped
from crmload.load.reader import HOLD
from crmload.plan.data import KeyIndex

__all__ = ["Failed", "Gate"]

_WORDS = {"rejected": "was rejected", "in_doubt": "is in doubt", "pending": "was not loaded"}


@dataclass(slots=True)
class Failed:
    """Rows of each load that did not end done; ``fixed`` are those whose record CRM has after all."""

    rows: dict[int, dict[int, tuple[str, str | None]]] = field(default_factory=dict)
    fixed: set[tuple[int, int]] = field(default_factory=set)

    def set(self, load: int, rows: dict[int, tuple[str, str | None]]) -> None:
        """Replace load ``load``'s failed rows (from its journal's ``unsettled()``)."""
        self.rows[load] = {line: v for line, v in rows.items() if (load, line) not in self.fixed}

    def get(self, load: int, line: int) -> tuple[str, str | None] | None:
        """``(state, error)`` when the row failed, else None."""
        table = self.rows.get(load)
        return table.get(line) if table is not None else None


class Gate:
    """``gate(line, mapped)`` for one pass of one load (see the module docstring).

    Args:
        load: the load's number.
        index: ids of the plan's keyed rows.
        failed: the plan's failed rows, shared and refreshed by the runner.
        checks: ``(attribute, entity)`` lookups whose parent rows must have loaded.
        levels: ``{line: level}`` of a self-referencing file sorted parent-first, with ``level`` this pass.
        exact: hold rows of earlier levels too (a pass of a run that began here: they are settled, and the
            Loader runs without ``resume``: it neither reads the journal's states nor re-checks the file).
        links: an update pass: hold rows whose create failed and rows with nothing to set.
        missing: ``{entity: {id: key}}`` that neither the plan nor CRM holds (``--verify-lookups``): rejected.
    """

    def __init__(
        self,
        load: int,
        index: KeyIndex,
        failed: Failed,
        checks: Sequence[tuple[str, str]],
        *,
        levels: dict[int, int] | None = None,
        level: int = 0,
        exact: bool = False,
        links: bool = False,
        missing: Mapping[str, Mapping[UUID, str]] | None = None,
    ) -> None:
        self.load = load
        self.index = index
        self.failed = failed
        self.checks = list(checks)
        self.levels = levels
        self.level = level
        self.exact = exact
        self.links = links
        self.missing = missing
        self.held = 0

    def __call__(self, line: int, mapped: Mapped | None) -> object:
        if self.levels is not None:
            at = self.levels.get(line, 0)
            if at > self.level or (self.exact and at < self.level):
                self.held += 1
                return HOLD
        if mapped is None:  # asked before mapping: only a level can hold a row by its line
            return None
        if self.links and (
            self.failed.get(self.load, line) is not None
            or all(mapped.attrs.get(attr) is None for attr, _entity in self.checks)
        ):
            return HOLD
        for attr, entity in self.checks:
            ident = getattr(mapped.attrs.get(attr), "id", None)
            if ident is None:
                continue
            hit = self.index.find(entity, ident)
            if hit is None:
                key = self.missing.get(entity, {}).get(ident) if self.missing else None
                if key is not None:
                    return f"lookup {attr}: no row of the plan and no {entity} in CRM has key {key!r}"
                continue  # not a row of this plan: trusted, as import trusts it (unless --verify-lookups)
            bad = self.failed.get(*hit)
            if bad is not None:
                state, error = bad
                why = f": {error}" if error else ""
                return f"parent {entity} line {hit[1]} {_WORDS.get(state, state)}{why}"
        return None
