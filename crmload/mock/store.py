"""The mock's in-memory, thread-safe record store, keyed by entity and primary key, holding typed values.

Both endpoints (2007 and the Organization service) share one store, so a record written through one is read
through the other with the same values. The store also enforces what CRM's database does:

- **referential integrity**: a lookup (Lookup/Customer/Owner value with a target entity) must name a record
  that exists, else ``Dangling``; ``known`` ids (the org's users, business unit, organization) always exist;
- **alternate keys** (declared per entity in the metadata): key values are unique (``DuplicateKey``) and
  records can be found by them (``find_by_key``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping

from crmload.mock.values import Value, to_json

__all__ = ["Dangling", "Duplicate", "DuplicateKey", "Missing", "Store", "UnknownKey"]

Record = dict[str, Value]
_REFS = frozenset({"Lookup", "Customer", "Owner"})


class Duplicate(KeyError):
    """A Create with a primary key that already exists."""


class DuplicateKey(Duplicate):
    """A Create or Update that would give two records the same alternate key values; ``key`` names the key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class Missing(KeyError):
    """An Update, Delete or Retrieve of a record that is not there."""


class Dangling(KeyError):
    """A lookup to a record that does not exist: ``entity`` and ``id`` of the missing target."""

    def __init__(self, entity: str, rid: uuid.UUID) -> None:
        super().__init__(f"{entity} {rid}")
        self.entity = entity
        self.id = rid


class UnknownKey(KeyError):
    """Key attributes that match no alternate key declared for the entity."""


def _norm(v: object) -> object:
    # SQL Server's default collation compares strings case-insensitively, and so do CRM's key lookups.
    return v.lower() if isinstance(v, str) else v


class Store:
    """Records per entity in insertion order; every method takes the one lock, so callers see whole
    records.

    Args:
        new_id: draws the id of a Create that brings none.
        keys: ``{entity: {key name: (attribute, ...)}}``, the alternate keys to index and enforce.
        integrity: check that every lookup names an existing record (CRM does; off for rehearsals only).
    """

    def __init__(
        self,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        *,
        keys: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
        integrity: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[uuid.UUID, Record]] = {}
        self._new_id = new_id
        self._keys = {e: dict(k) for e, k in (keys or {}).items() if k}
        self._index: dict[tuple[str, str], dict[tuple[object, ...], uuid.UUID]] = {}
        self._known: set[tuple[str, uuid.UUID]] = set()
        self.integrity = integrity
        self._versions: dict[str, int] = {}
        self._ordered: dict[str, tuple[int, list[bytes], list[uuid.UUID]]] = {}
        #: Called with the lock held after each create commits: ``(entity, id, stored record) -> drop?``.
        #: The fault plan's silent drops and mutations live there (the record may be changed in place).
        self.after_create: Callable[[str, uuid.UUID, Record], bool] | None = None

    def add_known(self, entity: str, rid: uuid.UUID) -> None:
        """Declare a record that lookups may name without it being stored (the caller's systemuser...)."""
        with self._lock:
            self._known.add((entity, rid))

    # -- integrity and keys (call with the lock held) ---

    def _check_refs(self, attrs: Mapping[str, Value]) -> None:
        if not self.integrity:
            return
        for v in attrs.values():
            if v.type in _REFS and v.value is not None and v.ref:
                target = v.ref.lower()
                if v.value not in self._data.get(target, ()) and (target, v.value) not in self._known:
                    raise Dangling(target, v.value)

    def _key_values(self, entity: str, rec: Mapping[str, Value]) -> dict[str, tuple[object, ...] | None]:
        out: dict[str, tuple[object, ...] | None] = {}
        for name, attrs in self._keys.get(entity, {}).items():
            vals = tuple(_norm(rec[a].value) if a in rec else None for a in attrs)
            out[name] = None if any(v is None for v in vals) else vals
        return out

    def _reindex(
        self, entity: str, rid: uuid.UUID, old: Mapping[str, Value], new: Mapping[str, Value]
    ) -> None:
        """Move ``rid``'s key entries from ``old`` to ``new`` values (DuplicateKey before changing any)."""
        before, after = self._key_values(entity, old), self._key_values(entity, new)
        for name, vals in after.items():
            owner = self._index.get((entity, name), {}).get(vals) if vals is not None else None
            if owner is not None and owner != rid:
                raise DuplicateKey(name)
        for name, vals in after.items():
            index = self._index.setdefault((entity, name), {})
            if before.get(name) is not None:
                index.pop(before[name], None)  # type: ignore[arg-type]
            if vals is not None:
                index[vals] = rid

    # -- operations ---

    def create(
        self, entity: str, key_attr: str, attrs: Mapping[str, Value], id: uuid.UUID | None
    ) -> uuid.UUID:
        """Insert a record; ``id=None`` draws a new one. Raises Duplicate, DuplicateKey, Dangling."""
        with self._lock:
            return self._create(entity, key_attr, attrs, id)

    def _create(
        self, entity: str, key_attr: str, attrs: Mapping[str, Value], id: uuid.UUID | None
    ) -> uuid.UUID:
        table = self._data.setdefault(entity, {})
        self._versions[entity] = self._versions.get(entity, 0) + 1
        rid = id if id is not None else self._new_id()
        if rid in table:
            raise Duplicate(rid)
        self._check_refs(attrs)
        rec = {key_attr: Value("Key", rid)}
        rec.update((k, v) for k, v in attrs.items() if k != key_attr)
        self._reindex(entity, rid, {}, rec)
        table[rid] = rec
        if self.after_create is not None and self.after_create(entity, rid, rec):
            self._reindex(entity, rid, rec, {})
            del table[rid]
        return rid

    def key_attributes(self, entity: str) -> set[str]:
        """The attributes of ``entity``'s alternate keys (never mutated: the index would go stale)."""
        return {a for attrs in self._keys.get(entity, {}).values() for a in attrs}

    def update(self, entity: str, rid: uuid.UUID, attrs: Mapping[str, Value], key_attr: str) -> None:
        """Merge ``attrs`` into a record. Raises ``Missing``, ``DuplicateKey``, ``Dangling``."""
        with self._lock:
            self._update(entity, rid, attrs, key_attr)

    def _update(self, entity: str, rid: uuid.UUID, attrs: Mapping[str, Value], key_attr: str) -> None:
        rec = self._data.get(entity, {}).get(rid)
        if rec is None:
            raise Missing(rid)
        self._check_refs(attrs)
        new = dict(rec)
        new.update((k, v) for k, v in attrs.items() if k != key_attr)
        self._reindex(entity, rid, rec, new)
        rec.update(new)

    def upsert(
        self,
        entity: str,
        key_attr: str,
        attrs: Mapping[str, Value],
        id: uuid.UUID | None,
        keys: Mapping[str, Value] | None = None,
    ) -> tuple[uuid.UUID, bool]:
        """Update the record found by ``id``, else by alternate ``keys``; create it when absent.

        Returns (id, created). Key attributes go into the record on create and are left alone on update,
        as CRM's Upsert does. Raises ``UnknownKey``, ``DuplicateKey``, ``Dangling``.
        """
        with self._lock:
            found = id
            if found is None and keys:
                found = self._find(entity, keys)
            if found is not None and found in self._data.get(entity, {}):
                self._update(
                    entity, found, {k: v for k, v in attrs.items() if k not in (keys or {})}, key_attr
                )
                return found, False
            merged = {**attrs, **(keys or {})}
            return self._create(entity, key_attr, merged, found), True

    def find_by_key(self, entity: str, keys: Mapping[str, Value]) -> uuid.UUID | None:
        """Return the id of the record whose alternate key values are ``keys``, or None. Raises UnknownKey."""
        with self._lock:
            return self._find(entity, keys)

    def _find(self, entity: str, keys: Mapping[str, Value]) -> uuid.UUID | None:
        wanted = set(keys)
        for name, attrs in self._keys.get(entity, {}).items():
            if set(attrs) == wanted:
                vals = tuple(_norm(keys[a].value) for a in attrs)
                return self._index.get((entity, name), {}).get(vals)
        raise UnknownKey(", ".join(sorted(wanted)))

    def delete(self, entity: str, rid: uuid.UUID) -> None:
        """Remove a record. Raises ``Missing``."""
        with self._lock:
            self._versions[entity] = self._versions.get(entity, 0) + 1
            rec = self._data.get(entity, {}).pop(rid, None)
            if rec is None:
                raise Missing(rid)
            self._reindex(entity, rid, rec, {})

    def get(self, entity: str, rid: uuid.UUID) -> Record:
        """Return a copy of one record. Raises ``Missing``."""
        with self._lock:
            rec = self._data.get(entity, {}).get(rid)
            if rec is None:
                raise Missing(rid)
            return dict(rec)

    def some(self, entity: str, ids: Iterable[uuid.UUID]) -> list[Record]:
        """Return copies of the records of ``entity`` among ``ids`` (each once; missing ones skipped)."""
        with self._lock:
            table = self._data.get(entity, {})
            return [dict(table[i]) for i in dict.fromkeys(ids) if i in table]

    def all(self, entity: str) -> list[Record]:
        """Return copies of every record of ``entity``, in insertion order."""
        with self._lock:
            return [dict(r) for r in self._data.get(entity, {}).values()]

    def counts(self) -> dict[str, int]:
        """Return the number of records per entity (entities with none left out)."""
        with self._lock:
            return {e: len(t) for e, t in sorted(self._data.items()) if t}

    def records_json(self, entity: str) -> list[dict[str, object]]:
        """Return the records of ``entity`` in their JSON-able form."""
        return [{k: to_json(v) for k, v in rec.items()} for rec in self.all(entity)]

    def ordered(
        self, entity: str, order: Callable[[uuid.UUID], bytes]
    ) -> tuple[list[bytes], list[uuid.UUID]]:
        """The ids of ``entity`` sorted by ``order`` (and their keys, for bisect), cached until a create or
        delete changes the set: a paged read then sorts the table once, not once per page."""
        with self._lock:
            version = self._versions.get(entity, 0)
            cached = self._ordered.get(entity)
            if cached is not None and cached[0] == version:
                return cached[1], cached[2]
            ids = sorted(self._data.get(entity, {}), key=order)
            keys = [order(i) for i in ids]
            self._ordered[entity] = (version, keys, ids)
            return keys, ids

    def clear(self) -> None:
        """Drop every record (known ids stay known)."""
        with self._lock:
            self._versions = {e: v + 1 for e, v in self._versions.items()}
            self._data.clear()
            self._index.clear()

    def key_names(self, entity: str) -> Iterable[tuple[str, tuple[str, ...]]]:
        """Return the alternate keys declared for ``entity`` as (name, attributes)."""
        return list(self._keys.get(entity, {}).items())
