"""Export: page an entity out of CRM into a CSV that ``crmload import`` takes back unchanged.

Reads go through the one ``CrmClient`` (keep-alive, limiter, connection guard, retries, auth, either endpoint)
with ``retrieve_pages``: RetrieveMultiple (or a paged FetchExpression on the Organization service) following
MoreRecords and PagingCookie. Memory stays flat: one page (at most 5,000 records) is held at a time, turned
into CSV text and appended to the output, which is flushed and fsynced before the state file says the page
is done. ``--resume`` cuts the output back to the last whole page and asks for the next one with its cookie.

Column types come from the metadata, else from the first page's values, else String, and are written into the
header in import's grammar (``crmload.read.values``). Rows come in the server's order (the primary key when
the query names no order), so export -> import (ids kept) -> export writes the same bytes.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from lxml import etree

from crmload.errors import ConfigError
from crmload.load.journal import public_url
from crmload.metadata import EntityMeta, Metadata, load_metadata
from crmload.read.state import ExportState, fingerprint, state_path
from crmload.read.values import LOADABLE, format_value, guess_target, header_for, type_of_value
from crmload.soap.codec2007 import Page

__all__ = ["ExportSpec", "ExportSummary", "Exporter", "parse_where"]

_REFS = frozenset({"Lookup", "Customer", "Owner"})
_INTS = frozenset({"CrmNumber", "Picklist", "Status"})


def parse_where(items: Iterable[str], meta: EntityMeta | None) -> dict[str, object]:
    """``["statecode=0", "name=Contoso"]`` -> ``{"statecode": 0, ...}``: Equal conditions, ANDed.

    ``attr=null`` asks for a null; values are typed by the metadata (numbers, option sets, booleans, money).
    """
    out: dict[str, object] = {}
    for item in items:
        attr, sep, text = item.partition("=")
        attr = attr.strip().lower()
        if not sep or not attr:
            raise ConfigError(f"--where {item!r}: expected attribute=value, e.g. statecode=0")
        crm_type = meta.type_of(attr) if meta is not None else None
        if meta is not None and crm_type is None:
            raise ConfigError(f"--where {item!r}: {meta.name} has no attribute {attr!r}")
        text = text.strip()
        value: object = text
        try:
            if text.lower() == "null":
                value = None
            elif crm_type in _INTS:
                value = int(text)
            elif crm_type == "CrmBoolean":
                value = text.lower() in ("1", "true", "yes")
            elif crm_type in ("CrmMoney", "CrmDecimal"):
                value = Decimal(text)
        except (ValueError, ArithmeticError):
            raise ConfigError(f"--where {item!r}: not a {crm_type} value") from None
        out[attr] = value
    return out


def _fetch_columns(fetch_xml: str) -> tuple[str, tuple[str, ...] | None]:
    """The entity and attribute names (None: all-attributes) a FetchXML query asks for, in its order."""
    try:
        root = etree.fromstring(
            fetch_xml.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True)
        )
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"--fetch: not well-formed XML: {exc}") from None
    ent = root.find("entity")
    if root.tag != "fetch" or ent is None or not ent.get("name"):
        raise ConfigError("--fetch: expected <fetch><entity name=...>...</entity></fetch>")
    if ent.find("all-attributes") is not None:
        return str(ent.get("name")).lower(), None
    return str(ent.get("name")).lower(), tuple(str(a.get("name")).lower() for a in ent.iterfind("attribute"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSpec:
    """What to export. ``columns`` None: every attribute the metadata knows and import can load.

    ``key_of``: ``{"account": "accountnumber"}`` writes lookups to accounts as their accountnumber under a
    ``key(account)`` header, for an import with ``--key accountnumber`` (ids then follow from the key).
    """

    entity: str
    columns: tuple[str, ...] | None = None
    where: Mapping[str, object] | None = None
    fetch_xml: str | None = None
    page_size: int = 5000
    key_of: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 5000:
            raise ConfigError(f"page size must be 1..5000 (CRM's largest page), not {self.page_size}")
        if self.fetch_xml is not None and (self.columns is not None or self.where):
            raise ConfigError("--fetch names its own columns and filter: drop --columns/--where")


@dataclass(slots=True, kw_only=True)
class ExportSummary:
    """What an export wrote: rows and pages (this run and in all), the header, where it resumed."""

    entity: str
    output: str
    header: list[str]
    rows: int
    pages: int
    resumed_at_page: int = 0
    key_records: int = 0
    requests: int = 0
    sockets_opened: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return {"command": "export", "exit_code": 0, **{k: getattr(self, k) for k in self.__slots__}}


class Exporter:
    """Export one entity to CSV through ``client``; ``on_page(rows, pages)`` after each page is saved.

    Example::

        >>> with CrmClient(url, org="Contoso") as client:  # doctest: +SKIP
        ...     spec = ExportSpec(entity="account", columns=("accountid", "name"))
        ...     Exporter(client, spec).run(Path("accounts.csv"))
    """

    def __init__(
        self,
        client: Any,
        spec: ExportSpec,
        *,
        metadata: Metadata | None = None,
        on_page: Callable[[int, int], None] | None = None,
    ) -> None:
        self.client = client
        self.spec = spec
        self.metadata = metadata or load_metadata()
        entity = spec.entity.lower()
        self.columns = spec.columns
        if spec.fetch_xml is not None:
            entity, self.columns = _fetch_columns(spec.fetch_xml)
        self.entity = entity
        self.meta = self.metadata.entity(entity) if self.metadata.has(entity) else None
        self.on_page = on_page
        self._keys: dict[str, dict[UUID, str]] = {}

    # --- columns ----------------------------------------------------------------------------------------

    def _names(self) -> list[str]:
        if self.columns is not None:
            return [c.lower() for c in self.columns]
        if self.meta is None:
            raise ConfigError(f"all columns of {self.entity}: the metadata does not know it; name --columns")
        pk = self.meta.primary_key
        rest = sorted(a for a, t in self.meta.attributes.items() if t in LOADABLE and a != pk)
        return [pk, *rest]

    def _header(self, records: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str | None]]:
        """(attributes, header texts, key-map entity per column) from the metadata and the first page."""
        names = self._names()
        header, by_key = [], []
        for name in names:
            meta_type = self.meta.type_of(name) if self.meta is not None else None
            first = next((r[name] for r in records if r.get(name) is not None), None)
            crm_type = meta_type or type_of_value(first) or "String"
            if meta_type == "Key" and name != (self.meta.primary_key if self.meta else None):
                crm_type = "UniqueIdentifier"
            if crm_type not in LOADABLE and crm_type not in ("State", "EntityNameReference"):
                raise ConfigError(f"column {name!r}: type {crm_type} cannot be imported from a file")
            target = None
            if crm_type in _REFS:
                target = getattr(first, "entity", None) or guess_target(
                    self.meta, name, crm_type, self.metadata.names()
                )
            keyed = target if target in self.spec.key_of else None
            known = meta_type is not None
            text = name if crm_type in ("State", "EntityNameReference") else None
            header.append(text or header_for(name, crm_type, target, by_key=keyed is not None, known=known))
            by_key.append(keyed)
        return names, header, by_key

    def _key_map(self, entity: str) -> dict[UUID, str]:
        """id -> key value of every record of ``entity`` (one id-and-key page at a time; kept in memory)."""
        if entity not in self._keys:
            attr = self.spec.key_of[entity]
            pk = self.metadata.entity(entity).primary_key if self.metadata.has(entity) else f"{entity}id"
            found: dict[UUID, str] = {}
            for rec in self.client.retrieve_multiple(
                entity, columns=[pk, attr], page_size=self.spec.page_size
            ):
                rid = rec.get(pk)
                rid = getattr(rid, "id", rid)
                if isinstance(rid, UUID) and rec.get(attr) not in (None, ""):
                    found[rid] = format_value(rec[attr])
            self._keys[entity] = found
        return self._keys[entity]

    # --- the run ----------------------------------------------------------------------------------------

    def _query(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "entity": self.entity,
            "columns": list(self.columns) if self.columns is not None else None,
            "where": {k: str(v) for k, v in (spec.where or {}).items()},
            "fetch": spec.fetch_xml,
            "page_size": spec.page_size,
            "key_of": dict(spec.key_of),
        }

    def _start(self, output: Path, *, resume: bool, force: bool) -> ExportState:
        spath = state_path(output)
        url = public_url(str(self.client.url))
        query = fingerprint(self._query())
        if resume:
            if not spath.exists():
                raise ConfigError(f"nothing to resume: no {spath.name} beside {output}")
            state = ExportState.load(spath)
            if (state.url, state.entity, state.query) != (url, self.entity, query):
                raise ConfigError(
                    f"{spath.name} is the state of another export (URL, entity or flags differ); "
                    "run it again without --resume (and --force to replace the file)"
                )
            with output.open("r+b") as fh:  # drop whatever a killed run wrote after its last whole page
                fh.truncate(state.bytes)
            return state
        if output.exists() and not force:
            hint = " (an unfinished export: --resume continues it)" if spath.exists() else ""
            raise ConfigError(f"{output} exists{hint}; --force replaces it")
        output.write_bytes(b"")
        return ExportState(url=url, entity=self.entity, query=query, header=[])

    def run(self, output: Path, *, resume: bool = False, force: bool = False) -> ExportSummary:
        """Export to ``output``; returns what was written. ConfigError for flags that cannot work."""
        output = Path(output)
        state = self._start(output, resume=resume, force=force)
        resumed_at = state.next_page if resume else 0
        names: list[str] = []
        keyed: list[str | None] = []
        if state.header:  # a resumed export keeps the header it wrote (its types came from page 1)
            names, keyed = _parse_header(state.header)
        for entity in {e for e in keyed if e}:
            self._key_map(entity)
        spath = state_path(output)
        with output.open("ab") as fh:
            if state.more:
                pages = self.client.retrieve_pages(
                    self.entity,
                    self.spec.where,
                    None if self.columns is None else names or self._names(),
                    self.spec.page_size,
                    page_number=state.next_page,
                    paging_cookie=state.cookie,
                    fetch_xml=self.spec.fetch_xml,
                )
                for page in pages:
                    if not state.header:
                        names, state.header, keyed = self._header(page.records)
                        for entity in {e for e in keyed if e}:
                            self._key_map(entity)
                        fh.write(_csv_rows([state.header]))
                    fh.write(self._rows(page, names, keyed))
                    fh.flush()
                    os.fsync(fh.fileno())
                    state.pages += 1
                    state.rows += len(page.records)
                    state.bytes = fh.tell()
                    state.next_page += 1
                    state.more = page.more_records and bool(page.records)
                    state.cookie = page.paging_cookie if state.more else None
                    state.save(spath)
                    if self.on_page is not None:
                        self.on_page(state.rows, state.pages)
        spath.unlink(missing_ok=True)
        stats = self.client.stats()
        return ExportSummary(
            entity=self.entity,
            output=str(output),
            header=state.header,
            rows=state.rows,
            pages=state.pages,
            resumed_at_page=resumed_at,
            key_records=sum(len(m) for m in self._keys.values()),
            requests=int(stats.get("requests", 0) or 0),
            sockets_opened=int(stats.get("sockets_opened", 0) or 0),
        )

    def _rows(self, page: Page, names: list[str], keyed: list[str | None]) -> bytes:
        rows = []
        for rec in page.records:
            row = []
            for name, key_entity in zip(names, keyed, strict=True):
                value = rec.get(name)
                keys = None
                if key_entity is not None and value is not None:
                    if getattr(value, "entity", key_entity) != key_entity:
                        raise ConfigError(
                            f"{self.entity} {_rid(rec, self.meta)} column {name!r}: points at "
                            f"{value.entity}, but the column is written as {key_entity} keys (--key-of)"
                        )
                    keys = self._keys[key_entity]
                try:
                    row.append(format_value(value, keys=keys))
                except ConfigError as exc:
                    raise ConfigError(
                        f"{self.entity} {_rid(rec, self.meta)} column {name!r}: {exc}"
                    ) from None
            rows.append(row)
        return _csv_rows(rows)


def _parse_header(header: list[str]) -> tuple[list[str], list[str | None]]:
    """(attribute names, key-map entity per column) of a header this module wrote."""
    names, keyed = [], []
    for text in header:
        name, _, kind = text.partition(":")
        names.append(name)
        keyed.append(kind[4:-1] if kind.startswith("key(") and kind.endswith(")") else None)
    return names, keyed


def _rid(rec: Mapping[str, Any], meta: EntityMeta | None) -> str:
    value = rec.get(meta.primary_key) if meta is not None else None
    return str(getattr(value, "id", value) or "?")


def _csv_rows(rows: list[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode("utf-8")
