"""A plan read against its files: each load's header, map and lookups, the graph, and what is deferred.

``analyse(plan)`` opens every file's header and compiles its map exactly as ``import`` does (``Mapper``,
``prepare``), so a bad column or map fails here, naming the load, before anything is sent. Lookups by key
(``{ lookup = "account", key = "parent_code" }`` in a map, or a ``parent_code:key(account)`` header) to an
entity that some load of the plan loads are the edges. ``decide(...)`` then fixes, per load, which lookup
columns are left empty on create and set by the update pass (``deferred``) and whether its self-references
are sorted into levels instead.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from crmload.errors import ConfigError
from crmload.load.mapping import Mapper, MapSpec
from crmload.load.source import CsvSource
from crmload.plan.data import KeyIndex, SelfRows, levels, read_keys
from crmload.plan.graph import Edge, deferred, order
from crmload.plan.spec import LoadSpec, Plan

__all__ = ["Analysis", "LoadInfo", "analyse", "create_spec", "link_spec", "prepare_data"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LoadInfo:
    """One load as the plan runs it."""

    spec: LoadSpec
    map_spec: MapSpec
    key: str | None
    header: list[str]
    #: ``(source column, attribute, target entity)`` of every lookup by key in the file.
    lookups: list[tuple[str, str, str]] = field(default_factory=list)
    #: Edges whose lookup is left empty on create and set by the update pass.
    deferred: list[Edge] = field(default_factory=list)
    #: ``{line: level}`` when self-references are sorted parent-first (one create per row, no update).
    levels: dict[int, int] | None = None

    @property
    def passes(self) -> int:
        """Create passes over the file: one per self-reference level."""
        return 1 + max(self.levels.values(), default=0) if self.levels else 1


@dataclass(slots=True)
class Analysis:
    """A plan's loads, edges and tiers (``tiers[k]`` = components of tier k, each a list of loads)."""

    plan: Plan
    loads: list[LoadInfo]
    edges: list[Edge]
    tiers: list[list[list[int]]]

    def describe(self) -> list[str]:
        """The order, one line per tier: ``tier 1: accounts.csv (account)``."""
        out = []
        for k, tier in enumerate(self.tiers, 1):
            parts = []
            for comp in tier:
                names = [f"{self.loads[i].spec.file.name} ({self.loads[i].spec.entity})" for i in comp]
                parts.append(" then ".join(names) if len(comp) > 1 else names[0])
            out.append(f"tier {k}: " + "; ".join(parts))
        for info in self.loads:
            name = info.spec.file.name
            if info.levels is not None:
                out.append(
                    f"{name}: self-reference sorted parent-first, {info.passes} levels, no update pass"
                )
            if info.deferred:
                cols = ", ".join(sorted({e.attribute for e in info.deferred}))
                out.append(f"{name}: {cols} left empty on create, set by an update pass (a cycle)")
        return out


def analyse(plan: Plan) -> Analysis:
    """Read every load's header and map; build the graph and its tiers. ConfigError names the load."""
    infos = [_info(ld) for ld in plan.loads]
    by_entity: dict[str, list[int]] = {}
    for info in infos:
        by_entity.setdefault(info.spec.entity, []).append(info.spec.index)
    edges: list[Edge] = []
    for info in infos:
        for column, attribute, entity in info.lookups:
            for parent in by_entity.get(entity, []):
                if infos[parent].key is None:
                    raise ConfigError(
                        f"{infos[parent].spec.label} is the target of {info.spec.label}'s lookup "
                        f"{attribute!r} "
                        f"(column {column!r}): give it a key, so its records' ids follow from their keys"
                    )
                edges.append(
                    Edge(
                        child=info.spec.index,
                        parent=parent,
                        column=column,
                        attribute=attribute,
                        entity=entity,
                    )
                )
    tiers = order(len(infos), edges)
    for tier in tiers:
        for comp in tier:
            for e in deferred(comp, edges):
                infos[e.child].deferred.append(e)
    return Analysis(plan=plan, loads=infos, edges=edges, tiers=tiers)


def _info(ld: LoadSpec) -> LoadInfo:
    try:
        spec = MapSpec.load(ld.map) if ld.map is not None else MapSpec()
        if spec.entity and spec.entity.lower() != ld.entity:
            raise ConfigError(f"map {ld.map} is for entity {spec.entity!r}, not {ld.entity!r}")
        key = ld.key or spec.key
        with CsvSource(ld.file, encoding=ld.encoding, delimiter=ld.delimiter) as src:
            header = list(src.header)
        if not header:
            raise ConfigError(f"{ld.file} is empty")
        mapper = Mapper(ld.entity, spec=spec, key=key)
        mapper.prepare(header)
        lookups = []
        for name in header:
            col = mapper.column(name)
            if col is not None and col.by_key and col.target:
                lookups.append((name, col.attribute, col.target))
    except ConfigError as exc:
        raise ConfigError(f"{ld.label}: {exc}") from None
    return LoadInfo(spec=ld, map_spec=spec, key=key, header=header, lookups=lookups)


def _source_of(name: str, entry: Any) -> str:
    """The source column a map entry reads (a lookup by key reads its ``key`` column)."""
    if isinstance(entry, dict) and "lookup" in entry and "key" in entry:
        return str(entry["key"])
    return name


def create_spec(info: LoadInfo) -> MapSpec:
    """The load's map with its deferred lookup columns skipped: the create leaves them empty."""
    held = {e.column for e in info.deferred}
    if not held:
        return info.map_spec
    columns = {n: e for n, e in info.map_spec.columns.items() if _source_of(n, e) not in held}
    columns.update({c: {"skip": True} for c in held})
    return dataclasses.replace(info.map_spec, columns=columns)


def link_spec(info: LoadInfo) -> MapSpec:
    """A map that reads only the deferred lookup columns (and the key): the update pass's rows."""
    held = {e.column for e in info.deferred}
    columns: dict[str, Any] = {n: e for n, e in info.map_spec.columns.items() if _source_of(n, e) in held}
    columns.update({h: {"skip": True} for h in info.header if h not in held})
    return dataclasses.replace(info.map_spec, columns=columns, constants={}, defaults={})


def prepare_data(analysis: Analysis, *, max_levels: int = 16) -> KeyIndex:
    """Index the keys of the loads lookups point at; sort self-references or defer them (one read a file)."""
    index = KeyIndex()
    targets = {e.parent for e in analysis.edges}
    rows: dict[int, SelfRows] = {}
    for info in analysis.loads:
        i = info.spec.index
        if i in targets and info.key is not None:
            own = [e.column for e in analysis.edges if e.is_self and e.child == i]
            rows[i] = read_keys(info.spec, info.key, index, own, trim=info.map_spec.trim)
    for info in analysis.loads:
        i = info.spec.index
        own_edges = [e for e in analysis.edges if e.is_self and e.child == i]
        if not own_edges:
            continue
        lv = levels(rows[i], index.by_entity.get(info.spec.entity, {}), i)
        depth = 1 + max(lv.values(), default=0) if lv is not None else 0
        if lv is None or depth > max_levels:
            why = "cyclic in the data" if lv is None else f"{depth} levels deep (more than {max_levels})"
            log.info("%s: self-reference %s: set by an update pass", info.spec.label, why)
            info.deferred.extend(own_edges)
        else:
            info.levels = lv if depth > 1 else None  # no row's parent is in the file: nothing to order
    return index
