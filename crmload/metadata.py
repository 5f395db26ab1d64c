"""Entity metadata: which entities exist, their primary key, and each attribute's CRM type.

The table ships as package data (``crmload/data/metadata.json``), derived from the real CRM 4.0 WSDL by
``scripts/derive_metadata.py``. The mock uses it to reject unknown attributes and wrongly typed values; the
loader
uses it to type CSV columns. Users add their own entities or attributes with a small JSON or TOML file::

    # extra.toml
    [contact.attributes]
    new_score = "CrmFloat"

    [new_region]
    primary_key = "new_regionid"
    attributes = { new_name = "String" }

Example::

    >>> meta = load_metadata()
    >>> meta.entity("account").attributes["name"]
    'String'

CRM type names: String, CrmNumber, CrmFloat, CrmDecimal, CrmMoney, CrmBoolean, CrmDateTime, Lookup, Customer,
Owner, Picklist, Status, State, Key, UniqueIdentifier, EntityNameReference, PartyList.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from crmload.errors import ConfigError

__all__ = ["CRM_TYPES", "EntityMeta", "Metadata", "load_metadata"]

CRM_TYPES = frozenset(
    {
        "String",
        "CrmNumber",
        "CrmFloat",
        "CrmDecimal",
        "CrmMoney",
        "CrmBoolean",
        "CrmDateTime",
        "Lookup",
        "Customer",
        "Owner",
        "Picklist",
        "Status",
        "State",
        "Key",
        "UniqueIdentifier",
        "EntityNameReference",
        "PartyList",
    }
)


@dataclass(frozen=True, slots=True)
class EntityMeta:
    """One entity: its logical name, primary key attribute, and attribute name -> CRM type name."""

    name: str
    primary_key: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    def type_of(self, attribute: str) -> str | None:
        """Return the CRM type of ``attribute``, or None when the entity has no such attribute."""
        return self.attributes.get(attribute)


class Metadata:
    """The entity table. Immutable once loaded; lookups are by lower-case logical name."""

    def __init__(self, entities: Mapping[str, EntityMeta]) -> None:
        self._entities = dict(entities)

    def has(self, entity: str) -> bool:
        """Return True when ``entity`` is known."""
        return entity in self._entities

    def entity(self, name: str) -> EntityMeta:
        """Return the metadata of ``name``; raises ``KeyError`` when it is unknown."""
        return self._entities[name]

    def names(self) -> list[str]:
        """Return every entity name, sorted."""
        return sorted(self._entities)

    def __contains__(self, name: object) -> bool:
        return name in self._entities

    def __len__(self) -> int:
        return len(self._entities)

    def __repr__(self) -> str:
        return f"Metadata({len(self._entities)} entities)"


def _entities_from(
    doc: Mapping[str, Any], base: Mapping[str, EntityMeta], origin: str
) -> dict[str, EntityMeta]:
    """Merge a parsed table (``{"entities": {...}}`` or the bare mapping) over ``base``."""
    table = doc.get("entities", doc)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{origin}: expected a table of entities")
    out = dict(base)
    for raw_name, spec in table.items():
        name = str(raw_name).lower()
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{origin}: entity {name!r} must be a table")
        old = out.get(name)
        attrs = dict(old.attributes) if old else {}
        for attr, crm_type in dict(spec.get("attributes", {})).items():
            if crm_type not in CRM_TYPES:
                raise ConfigError(f"{origin}: {name}.{attr}: unknown CRM type {crm_type!r}")
            attrs[str(attr).lower()] = str(crm_type)
        primary = str(spec.get("primary_key") or (old.primary_key if old else f"{name}id")).lower()
        attrs.setdefault(primary, "Key")
        out[name] = EntityMeta(name=name, primary_key=primary, attributes=attrs)
    return out


def _read_user_file(path: Path) -> dict[str, Any]:
    """Read a JSON or TOML (by suffix) metadata file."""
    try:
        if path.suffix.lower() == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib  # noqa: PLC0415 - only TOML files need it
            else:  # pragma: no cover - 3.10 only
                import tomli as tomllib  # noqa: PLC0415
            with path.open("rb") as fh:
                return dict(tomllib.load(fh))
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read metadata file {path}: {exc}") from exc


def load_metadata(extra: str | Path | None = None) -> Metadata:
    """Load the bundled table, plus the entities and attributes of an optional user JSON/TOML file.

    Args:
        extra: a path to a JSON or TOML file shaped like ``{entity: {"primary_key": ..., "attributes":
        {...}}}``
            (optionally under a top-level ``entities`` key). Entities are added; attributes of known entities
            are added or retyped.
    """
    text = resources.files("crmload").joinpath("data/metadata.json").read_text(encoding="utf-8")
    entities = _entities_from(json.loads(text), {}, "bundled metadata")
    if extra is not None:
        entities = _entities_from(_read_user_file(Path(extra)), entities, str(extra))
    return Metadata(entities)
