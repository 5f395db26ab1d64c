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

An attribute may also be a table with optional limits (``crmload.limits``), e.g. ``new_code = { type =
"String", max_length = 20 }``, or just ``{ max_length = 20 }`` for an attribute the table already types. The
bundled limits (``crmload/data/limits.json``, CRM's documented lengths) use the same form.

Alternate keys (Organization service: Upsert and lookups by KeyAttributes) go in a ``keys`` table::

    [account.keys]
    accountnumber = ["accountnumber"]

Example::

    >>> meta = load_metadata()
    >>> meta.entity("account").attributes["name"]
    'String'

CRM type names: String, CrmNumber, CrmFloat, CrmDecimal, CrmMoney, CrmBoolean, CrmDateTime, Lookup, Customer,
Owner, Picklist, Status, State, Key, UniqueIdentifier, EntityNameReference, PartyList, MultiPicklist.
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
from crmload.limits import DEFAULT_LIMITS, LIMIT_FIELDS, AttrLimits

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
        "MultiPicklist",  # a multi-select option set (9.0+, Organization service only)
    }
)


@dataclass(frozen=True, slots=True)
class EntityMeta:
    """One entity: its logical name, primary key attribute, attribute name -> CRM type name, the limits
    declared for some attributes (the rest take their type's default), and its alternate keys (key name ->
    attribute names)."""

    name: str
    primary_key: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, AttrLimits] = field(default_factory=dict)
    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def type_of(self, attribute: str) -> str | None:
        """Return the CRM type of ``attribute``, or None when the entity has no such attribute."""
        return self.attributes.get(attribute)

    def limits_of(self, attribute: str) -> AttrLimits | None:
        """Return what CRM accepts for ``attribute``: its declared limits, else its type's default."""
        own = self.limits.get(attribute)
        if own is not None:
            return own
        crm_type = self.attributes.get(attribute)
        return DEFAULT_LIMITS.get(crm_type) if crm_type else None


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
        limits = dict(old.limits) if old else {}
        for attr, attr_spec in dict(spec.get("attributes", {})).items():
            _add_attribute(attrs, limits, str(attr).lower(), attr_spec, f"{origin}: {name}.{attr}")
        primary = str(spec.get("primary_key") or (old.primary_key if old else f"{name}id")).lower()
        attrs.setdefault(primary, "Key")
        keys = _keys_from(spec.get("keys"), dict(old.keys) if old else {}, attrs, f"{origin}: {name}")
        out[name] = EntityMeta(name=name, primary_key=primary, attributes=attrs, limits=limits, keys=keys)
    return out


def _add_attribute(
    attrs: dict[str, str], limits: dict[str, AttrLimits], attr: str, spec: Any, where: str
) -> None:
    """Add or retype one attribute from a type name or a ``{type?, max_length?, ...}`` table."""
    table = spec if isinstance(spec, Mapping) else {"type": spec}
    unknown = set(table) - LIMIT_FIELDS - {"type"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    crm_type = table.get("type", attrs.get(attr))
    if crm_type is None:
        raise ConfigError(f"{where}: a new attribute needs a type")
    if crm_type not in CRM_TYPES:
        raise ConfigError(f"{where}: unknown CRM type {crm_type!r}")
    if crm_type != attrs.get(attr):
        limits.pop(attr, None)  # a retyped attribute starts from its new type's defaults
    attrs[attr] = str(crm_type)
    if LIMIT_FIELDS & set(table):
        base = limits.get(attr) or DEFAULT_LIMITS.get(str(crm_type))
        try:
            limits[attr] = AttrLimits.from_spec(table, base)
        except (ValueError, ArithmeticError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc


def _keys_from(
    spec: Any, keys: dict[str, tuple[str, ...]], attrs: Mapping[str, str], where: str
) -> dict[str, tuple[str, ...]]:
    """Add alternate keys: ``{name: [attr, ...]}``, or ``[[attr, ...], ...]`` named after their attributes."""
    if spec is None:
        return keys
    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    elif isinstance(spec, list):
        items = [("_".join(map(str, v)) if isinstance(v, list) else str(v), v) for v in spec]
    else:
        raise ConfigError(f"{where}: keys must be a table of key name -> attribute list")
    for key_name, key_attrs in items:
        cols = tuple(str(a).lower() for a in (key_attrs if isinstance(key_attrs, list) else [key_attrs]))
        unknown = [c for c in cols if c not in attrs]
        if not cols or unknown:
            raise ConfigError(f"{where}: key {key_name!r} names unknown attributes {unknown or cols}")
        keys[key_name.lower()] = cols
    return keys


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
    data = resources.files("crmload").joinpath("data")
    entities = _entities_from(json.loads(data.joinpath("metadata.json").read_text("utf-8")), {}, "metadata")
    limits = json.loads(data.joinpath("limits.json").read_text("utf-8"))
    entities = _entities_from(limits, entities, "bundled limits")
    if extra is not None:
        entities = _entities_from(_read_user_file(Path(extra)), entities, str(extra))
    return Metadata(entities)
