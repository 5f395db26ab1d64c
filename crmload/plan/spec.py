"""The plan file: a TOML list of loads (file, entity, key, map) and where they go.

Example (paths are relative to the plan file)::

    [target]                       # optional: --url/$CRMLOAD_URL and --org/$CRMLOAD_ORG override it
    url = "https://crm/XRMServices/2011/Organization.svc/web"
    org = "Contoso"

    [[load]]
    file = "accounts.csv"
    entity = "account"
    key = "account_code"
    map = "accounts.map.toml"      # parentaccountid = { lookup = "account", key = "parent_code" }

    [[load]]
    file = "contacts.csv"
    entity = "contact"
    key = "contact_code"
    map = "contacts.map.toml"

A load may also say ``mode`` (create, the default; update; upsert), ``name`` (a label for the summary),
``encoding`` and ``delimiter``. Mistakes are ``ConfigError`` naming the plan, the load and the field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmload.errors import ConfigError
from crmload.load.mapping import _load_toml

__all__ = ["LoadSpec", "Plan"]

_ENTITY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOAD_FIELDS = frozenset({"file", "entity", "key", "map", "mode", "name", "encoding", "delimiter"})
#: A plan loads rows: delete has no lookups to order by, and its reverse order would be another feature.
_PLAN_MODES = ("create", "update", "upsert")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSpec:
    """One ``[[load]]`` of a plan: a CSV file into one entity."""

    index: int
    file: Path
    entity: str
    key: str | None = None
    map: Path | None = None
    mode: str = "create"
    name: str = ""
    encoding: str = "utf-8-sig"
    delimiter: str = ","

    @property
    def label(self) -> str:
        """How messages name the load: ``load 2 (contacts.csv)``."""
        return f"load {self.index + 1} ({self.name or self.file.name})"

    def fingerprint(self) -> dict[str, str]:
        """What a resumed run must find unchanged: the load's settings and its map file's bytes."""
        out = {
            "file": str(self.file),
            "entity": self.entity,
            "key": self.key or "",
            "mode": self.mode,
            "map": str(self.map or ""),
            "encoding": self.encoding,
            "delimiter": self.delimiter,
        }
        if self.map is not None:
            try:
                out["map_sha256"] = hashlib.sha256(self.map.read_bytes()).hexdigest()
            except OSError as exc:
                raise ConfigError(f"{self.label}: cannot read map file {self.map}: {exc.strerror}") from exc
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A whole migration: loads and the target they go to. ``Plan.load(path)`` reads a plan file."""

    path: Path
    loads: tuple[LoadSpec, ...]
    url: str | None = None
    org: str | None = None
    endpoint: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read and check a plan file (every load's file and map must exist)."""
        p = Path(path)
        return cls.from_dict(_load_toml(p), p)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], path: Path) -> Plan:
        """Build a plan from a parsed document; relative paths are taken from ``path``'s folder."""
        where = f"plan {path}"
        unknown = set(doc) - {"target", "load"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown section(s) {', '.join(sorted(unknown))} (expected [target], [[load]])"
            )
        target = doc.get("target", {})
        if not isinstance(target, Mapping):
            raise ConfigError(f"{where}: [target] must be a table")
        bad = set(target) - {"url", "org", "endpoint"}
        if bad:
            raise ConfigError(f"{where}: [target]: unknown field(s) {', '.join(sorted(bad))}")
        endpoint = target.get("endpoint")
        if endpoint is not None and str(endpoint) not in ("2007", "2011"):
            raise ConfigError(f'{where}: [target] endpoint must be "2007" or "2011", not {endpoint!r}')
        raw = doc.get("load")
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{where}: no [[load]] tables: a plan lists at least one load")
        base = path.parent
        loads = tuple(_load(i, entry, base, where) for i, entry in enumerate(raw))
        seen: dict[Path, LoadSpec] = {}
        for ld in loads:
            other = seen.setdefault(ld.file.resolve(), ld)
            if other is not ld:
                raise ConfigError(f"{where}: {ld.label} loads the same file as {other.label}")
        return cls(
            path=path,
            loads=loads,
            url=_opt_str(target, "url", where),
            org=_opt_str(target, "org", where),
            endpoint=str(endpoint) if endpoint is not None else None,
        )


def _opt_str(table: Mapping[str, Any], name: str, where: str) -> str | None:
    value = table.get(name)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: {name} must be a string, not {value!r}")
    return value


def _load(i: int, entry: object, base: Path, where: str) -> LoadSpec:
    here = f"{where}: load {i + 1}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{here}: each [[load]] must be a table")
    bad = set(entry) - _LOAD_FIELDS
    if bad:
        raise ConfigError(f"{here}: unknown field(s) {', '.join(sorted(bad))}")
    for name in ("file", "entity"):
        if not isinstance(entry.get(name), str) or not entry[name].strip():
            raise ConfigError(f"{here}: {name!r} is required (a string)")
    for name in _LOAD_FIELDS - {"file", "entity"}:
        if name in entry and not isinstance(entry[name], str):
            raise ConfigError(f"{here}: {name!r} must be a string, not {entry[name]!r}")
    file = base / entry["file"]
    here = f"{where}: load {i + 1} ({entry.get('name') or file.name})"
    if not file.is_file():
        raise ConfigError(f"{here}: no such file: {file}")
    entity = entry["entity"].strip().lower()
    if not _ENTITY.fullmatch(entity):
        raise ConfigError(f"{here}: entity {entry['entity']!r} is not a logical name")
    mode = entry.get("mode", "create")
    if mode not in _PLAN_MODES:
        raise ConfigError(f"{here}: mode must be one of {', '.join(_PLAN_MODES)}, not {mode!r}")
    map_path = base / entry["map"] if entry.get("map") else None
    if map_path is not None and not map_path.is_file():
        raise ConfigError(f"{here}: no such map file: {map_path}")
    delimiter = entry.get("delimiter", ",")
    delimiter = "\t" if delimiter == "tab" else delimiter
    if len(delimiter) != 1:
        raise ConfigError(f"{here}: delimiter must be one character (or 'tab'), not {delimiter!r}")
    return LoadSpec(
        index=i,
        file=file,
        entity=entity,
        key=entry.get("key") or None,
        map=map_path,
        mode=mode,
        name=entry.get("name", ""),
        encoding=entry.get("encoding", "utf-8-sig"),
        delimiter=delimiter,
    )
