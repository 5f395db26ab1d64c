"""Column -> attribute mapping: types from metadata, header types, a TOML map file, keys and lookups by key.

A ``MapSpec`` is what the user wrote (a TOML file, or a dict); a ``Mapper`` is that spec compiled against one
entity's metadata and a header. ``Mapper.map(line_no, values)`` turns one source row into a ``Mapped`` record
or raises ``MappingError(line_no, column, value, reason)``; the run goes on.

Map file (every part optional)::

    entity = "contact"
    key = "contact_key"                  # same as --key
    [options]
    trim = true                          # strip spaces around values (default true)
    empty_as_null = true                 # "" in a text column becomes null (default: kept as "")
    timezone = "Europe/Paris"            # for dates without an offset (default UTC)
    date_format = ["%d/%m/%Y", "%Y-%m-%d"]
    unknown_columns = "error"            # or "ignore"
    [columns]
    "Full Name" = "fullname"             # rename
    industry = { attribute = "industrycode", labels = { "Retail" = 3, "Consulting" = 2 } }
    birthday = { attribute = "birthdate", format = "%d.%m.%Y", timezone = "Europe/Berlin" }
    notes = { skip = true }
    parentcustomerid = { lookup = "account", key = "account_key" }   # attribute <- key column, as uuid5
    [constants]
    address1_country = "France"
    [defaults]
    donotemail = false

Header types: ``revenue:money``, ``industrycode:picklist``, ``parentcustomerid:lookup(account)`` (a GUID, or
``contact:GUID`` naming another entity) and ``parentcustomerid:key(account)`` (a source key of an account,
resolved like ``--key`` did).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmload.errors import ConfigError, MappingError
from crmload.limits import PLATFORM_LIMITS, AttrLimits, check
from crmload.load.convert import CONVERTERS, TYPE_ALIASES, check_xml_text
from crmload.load.keys import key_id
from crmload.metadata import EntityMeta, Metadata, load_metadata
from crmload.types import Customer, Lookup, Money, Owner, Picklist, Status

__all__ = ["RESERVED_PREFIX", "ColumnSpec", "MapSpec", "Mapped", "Mapper"]

#: Columns whose name starts with this are crmload's own (the rejects file adds them); ignored on input.
RESERVED_PREFIX = "crmload_"
_HEADER = re.compile(r"^\s*([^:()]+?)\s*(?::\s*([A-Za-z]+)\s*(?:\(\s*([A-Za-z0-9_]+)\s*\))?)?\s*$")
_REFERENCE = frozenset({"Lookup", "Customer", "Owner"})
_DEFAULT_TARGET = {"Owner": "systemuser"}


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415 - only map files need it
    else:  # pragma: no cover - 3.10 only
        import tomli as tomllib  # noqa: PLC0415 - 3.10 only
    try:
        with path.open("rb") as fh:
            return dict(tomllib.load(fh))
    except OSError as exc:
        raise ConfigError(f"cannot read map file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"map file {path} is not valid TOML: {exc}") from exc


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {name!r}") from exc


def _formats(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list) and all(isinstance(f, str) for f in raw):
        return tuple(raw)
    raise ConfigError(f"a date format must be a string or a list of strings, not {raw!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class MapSpec:
    """A mapping as the user wrote it; build one with ``MapSpec.load(path)`` or ``MapSpec.from_dict(doc)``."""

    entity: str | None = None
    key: str | None = None
    trim: bool = True
    empty_as_null: bool = False
    timezone: str = "UTC"
    date_formats: tuple[str, ...] = ()
    unknown_columns: str = "error"
    columns: Mapping[str, Any] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.unknown_columns not in ("error", "ignore"):
            raise ConfigError("options.unknown_columns must be 'error' or 'ignore'")
        _zone(self.timezone)
        for name, entry in self.columns.items():
            if not isinstance(entry, (str, Mapping)):
                raise ConfigError(f"columns.{name}: expected an attribute name or a table")

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> MapSpec:
        """Build a spec from a parsed map document (the TOML layout in this module's docstring)."""
        known = {"entity", "key", "options", "columns", "constants", "defaults"}
        unknown = set(doc) - known
        if unknown:
            raise ConfigError(f"map file: unknown section(s) {', '.join(sorted(unknown))}")
        opts = dict(doc.get("options", {}))
        bad = set(opts) - {"trim", "empty_as_null", "timezone", "date_format", "unknown_columns"}
        if bad:
            raise ConfigError(f"map file: unknown option(s) {', '.join(sorted(bad))}")
        return cls(
            entity=doc.get("entity"),
            key=doc.get("key"),
            trim=bool(opts.get("trim", True)),
            empty_as_null=bool(opts.get("empty_as_null", False)),
            timezone=str(opts.get("timezone", "UTC")),
            date_formats=_formats(opts.get("date_format")),
            unknown_columns=str(opts.get("unknown_columns", "error")),
            columns=dict(doc.get("columns", {})),
            constants=dict(doc.get("constants", {})),
            defaults=dict(doc.get("defaults", {})),
        )

    @classmethod
    def load(cls, path: str | Path) -> MapSpec:
        """Read a TOML map file."""
        return cls.from_dict(_load_toml(Path(path)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnSpec:
    """How one source column becomes one attribute: its CRM type and conversion options."""

    source: str
    attribute: str
    crm_type: str
    target: str | None = None
    by_key: bool = False
    labels: Mapping[str, int] = field(default_factory=dict)
    formats: tuple[str, ...] = ()
    tz: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))
    trim: bool = True
    empty_as_null: bool = False
    limits: AttrLimits | None = None

    def convert(self, text: str) -> Any:
        """Convert one value; ValueError with the reason when it does not convert."""
        if self.trim:
            text = text.strip()
        if text == "":
            if self.crm_type in ("String", "State") and not self.empty_as_null:
                return ""
            return None
        return CONVERTERS[self.crm_type](text, self)


@dataclass(slots=True)
class Mapped:
    """One mapped record: the attributes to send, its id (keyed or id column) and the key value journalled."""

    attrs: dict[str, Any]
    id: UUID | None = None
    key: str | None = None


class _UnknownColumn(Exception):
    """Internal: a column that names no attribute of the entity."""


def _parse_type(text: str, where: str) -> tuple[str, str | None, bool]:
    """Return (crm type, target entity, by key) for a type such as ``money`` or ``lookup(account)``."""
    m = re.fullmatch(r"\s*([A-Za-z]+)\s*(?:\(\s*([A-Za-z0-9_]+)\s*\))?\s*", text)
    if not m:
        raise ConfigError(f"{where}: cannot read type {text!r}")
    name, target = m.group(1).lower(), m.group(2)
    if name == "key" and target:
        return "Lookup", target.lower(), True
    crm_type = TYPE_ALIASES.get(name)
    if crm_type is None:
        raise ConfigError(
            f"{where}: unknown type {text!r} (e.g. string, int, money, date, picklist, lookup(account))"
        )
    return crm_type, target.lower() if target else None, False


def _coerce(spec: ColumnSpec, raw: Any) -> Any:
    """Wrap a non-text value given through the library API in the CRM type the column needs."""
    t = spec.crm_type
    if t == "CrmMoney" and isinstance(raw, (int, Decimal, float)) and not isinstance(raw, bool):
        return Money(raw)  # type: ignore[arg-type]
    if t in ("Picklist", "Status") and isinstance(raw, int) and not isinstance(raw, bool):
        return Picklist(raw) if t == "Picklist" else Status(raw)
    if t in _REFERENCE and isinstance(raw, UUID) and spec.target:
        cls = {"Lookup": Lookup, "Customer": Customer, "Owner": Owner}[t]
        return cls(spec.target, raw)
    return raw


def _within(col: ColumnSpec, value: Any, limits: AttrLimits | None) -> Any:
    """Return ``value`` when CRM would accept it for the column's attribute; ValueError with why otherwise."""
    over = check(col.crm_type, limits, value)
    if over is not None:
        raise ValueError(over)
    return value


class Mapper:
    """A ``MapSpec`` compiled for one entity: turns source rows into ``Mapped`` records.

    Args:
        entity: the target entity's logical name.
        spec: the user's map (defaults: header names are attributes, types from metadata).
        key: the column whose value gives each record's deterministic id (``--key``).
        metadata: the entity table; ``load_metadata()`` by default.

    Example::

        >>> m = Mapper("account", key="code")
        >>> rec = m.map(2, {"code": "A-1", "name": "Contoso", "revenue:money": "1,200.50"})
        >>> rec.attrs["revenue"].value
        Decimal('1200.50')
    """

    def __init__(
        self,
        entity: str,
        *,
        spec: MapSpec | None = None,
        key: str | None = None,
        metadata: Metadata | None = None,
    ) -> None:
        self.entity = entity.lower()
        self.spec = spec or MapSpec()
        self.key = key or self.spec.key
        meta = metadata or load_metadata()
        self.meta: EntityMeta | None = meta.entity(self.entity) if meta.has(self.entity) else None
        self._tz = _zone(self.spec.timezone)
        self._entries: dict[str, tuple[str | None, Mapping[str, Any]]] = {}
        for name, entry in self.spec.columns.items():
            if isinstance(entry, str):
                self._entries[name] = (entry, {})
            elif "key" in entry and "lookup" in entry:
                self._entries[str(entry["key"])] = (str(entry.get("attribute", name)), entry)
            else:
                self._entries[name] = (entry.get("attribute"), entry)
        self._columns: dict[str, ColumnSpec | None] = {}
        self._constants = {a: self._fixed(a, v, "constants") for a, v in self.spec.constants.items()}
        self._defaults = {a: self._fixed(a, v, "defaults") for a, v in self.spec.defaults.items()}

    @property
    def primary_key(self) -> str:
        """The entity's primary key attribute, e.g. ``accountid``."""
        return self.meta.primary_key if self.meta else f"{self.entity}id"

    def _fixed(self, attribute: str, value: Any, where: str) -> Any:
        attr = attribute.lower()
        crm_type = (self.meta.type_of(attr) if self.meta else None) or "String"
        col = ColumnSpec(source=attr, attribute=attr, crm_type=crm_type, tz=self._tz, trim=False)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            return _within(col, col.convert(text), self._limits(attr, crm_type))
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{where}.{attribute}: {exc}") from exc

    def _limits(self, attribute: str, crm_type: str) -> AttrLimits | None:
        """The attribute's limits when the metadata types it as ``crm_type``; else only what no attribute of
        that type can exceed (its real length or precision is unknown here, and guessing low would refuse
        rows CRM accepts)."""
        if self.meta is not None and self.meta.type_of(attribute) == crm_type:
            return self.meta.limits_of(attribute)
        return PLATFORM_LIMITS.get(crm_type)

    def prepare(self, header: list[str]) -> None:
        """Compile every column of ``header``; a ConfigError names unknown columns, bad types or clashes."""
        unknown: list[str] = []
        seen: dict[str, str] = {}
        for name in header:
            try:
                col = self.column(name)
            except _UnknownColumn:
                unknown.append(name)
                continue
            if col is None:
                continue
            if col.attribute in seen:
                raise ConfigError(
                    f"columns {seen[col.attribute]!r} and {name!r} both map to {col.attribute!r}"
                )
            seen[col.attribute] = name
        if unknown:
            raise ConfigError(
                f"unknown column(s) for {self.entity}: {', '.join(repr(u) for u in unknown)}; "
                "rename or skip them in a --map file, or give a type in the header (name:string)"
            )
        if self.key and self.key not in header:
            raise ConfigError(f"--key column {self.key!r} is not in the header")

    def column(self, name: str) -> ColumnSpec | None:
        """Return how column ``name`` maps, or None when it is skipped."""
        if name in self._columns:
            return self._columns[name]
        col = self._compile(name)
        self._columns[name] = col
        return col

    def _compile(self, raw: str) -> ColumnSpec | None:  # noqa: PLR0912 - one rule per kind of column
        if raw.startswith(RESERVED_PREFIX):
            return None
        m = _HEADER.match(raw)
        if not m:
            raise ConfigError(f"cannot read column name {raw!r}")
        name, type_name, target = m.group(1), m.group(2), m.group(3)
        attr_name, entry = self._entries.get(raw) or self._entries.get(name) or (None, {})
        if entry.get("skip"):
            return None
        attribute = (attr_name or name).lower()
        where = f"column {raw!r}"
        crm_type, by_key = None, False
        declared = entry.get("type") or (f"{type_name}({target})" if target else type_name)
        if declared:
            crm_type, target, by_key = _parse_type(str(declared), where)
        meta_type = self.meta.type_of(attribute) if self.meta else None
        if "lookup" in entry:
            target, by_key = str(entry["lookup"]).lower(), True
            crm_type = meta_type if meta_type in _REFERENCE else "Lookup"
        elif crm_type == "Lookup" and meta_type in _REFERENCE:
            crm_type = meta_type  # lookup(x) on a Customer or Owner attribute keeps the attribute's own kind
        if crm_type is None:
            crm_type = meta_type
        if crm_type is None:
            if self.meta is not None and raw != self.key:
                if self.spec.unknown_columns == "ignore":
                    return None
                raise _UnknownColumn(raw)
            if self.meta is not None:
                return None  # the key column only names the record; it is not an attribute
            crm_type = "String"
        if crm_type in _REFERENCE and not target:
            target = _DEFAULT_TARGET.get(crm_type)
            if not target:
                raise ConfigError(f"{where} is a {crm_type}: name its entity, e.g. {name}:lookup(account)")
        if crm_type not in CONVERTERS:
            raise ConfigError(f"{where}: type {crm_type} cannot be loaded from a file")
        labels = dict(entry.get("labels", {}))
        if any(not isinstance(v, int) or isinstance(v, bool) for v in labels.values()):
            raise ConfigError(f"{where}: picklist labels must map to integers")
        return ColumnSpec(
            source=raw,
            attribute=attribute,
            crm_type=crm_type,
            target=target,
            by_key=by_key,
            labels=labels,
            formats=_formats(entry.get("format")) or self.spec.date_formats,
            tz=_zone(str(entry["timezone"])) if "timezone" in entry else self._tz,
            trim=bool(entry.get("trim", self.spec.trim)),
            empty_as_null=bool(entry.get("empty_as_null", self.spec.empty_as_null)),
            limits=self._limits(attribute, crm_type),
        )

    def map(self, line_no: int, values: Mapping[str, Any]) -> Mapped:
        """Map one row; MappingError (with line, column, value and reason) when a value does not convert."""
        out = Mapped(attrs=dict(self._constants))
        for name, raw in values.items():
            try:
                col = self.column(name)
            except _UnknownColumn:
                raise MappingError(
                    f"column {name!r}: {self.entity} has no such attribute", line_no=line_no, column=name
                ) from None
            if col is None:
                continue
            out.attrs[col.attribute] = self._value(line_no, col, raw)
        for attr, value in self._defaults.items():
            if out.attrs.get(attr) in (None, ""):
                out.attrs[attr] = value
        self._identify(line_no, values, out)
        return out

    def _value(self, line_no: int, col: ColumnSpec, raw: Any) -> Any:
        try:
            if isinstance(raw, str):
                return _within(col, col.convert(raw), col.limits)
            if isinstance(raw, str | None):  # pragma: no cover - None only
                return raw
            if col.crm_type == "String":
                check_xml_text(str(raw))
            return _within(col, _coerce(col, raw), col.limits)
        except (ValueError, TypeError) as exc:
            shown = str(raw) if len(str(raw)) <= 60 else str(raw)[:57] + "..."
            raise MappingError(
                f"column {col.source!r}: {exc}: {shown!r}", line_no=line_no, column=col.source, value=str(raw)
            ) from None

    def _identify(self, line_no: int, values: Mapping[str, Any], out: Mapped) -> None:
        pk = self.primary_key
        if pk in out.attrs:
            value = out.attrs.pop(pk)
            out.id = getattr(value, "id", value) if value is not None else None
        if self.key:
            raw = values.get(self.key)
            text = "" if raw is None else str(raw).strip()
            if not text:
                raise MappingError(f"key column {self.key!r} is empty", line_no=line_no, column=self.key)
            out.key = text
            out.id = key_id(self.entity, text)
        elif out.id is not None:
            out.key = str(out.id)
