"""The mock's in-memory, thread-safe record store, keyed by entity and primary key, holding typed values."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping

from crmload.mock.values import Value, to_json

__all__ = ["Duplicate", "Missing", "Store"]

Record = dict[str, Value]


class Duplicate(KeyError):
    """A Create with a primary key that already exists."""


class Missing(KeyError):
    """An Update, Delete or Retrieve of a record that is not there."""


class Store:
    """Records per entity in insertion order; every method takes the one lock, so callers see whole
    records."""

    def __init__(self, new_id: Callable[[], uuid.UUID] = uuid.uuid4) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[uuid.UUID, Record]] = {}
        self._new_id = new_id

    def create(
        self, entity: str, key_attr: str, attrs: Mapping[str, Value], id: uuid.UUID | None
    ) -> uuid.UUID:
        """Insert a record; ``id=None`` draws a new one. Raises ``Duplicate``."""
        with self._lock:
            table = self._data.setdefault(entity, {})
            rid = id if id is not None else self._new_id()
            if rid in table:
                raise Duplicate(rid)
            rec = {key_attr: Value("Key", rid)}
            rec.update((k, v) for k, v in attrs.items() if k != key_attr)
            table[rid] = rec
            return rid

    def update(self, entity: str, rid: uuid.UUID, attrs: Mapping[str, Value], key_attr: str) -> None:
        """Merge ``attrs`` into a record. Raises ``Missing``."""
        with self._lock:
            rec = self._data.get(entity, {}).get(rid)
            if rec is None:
                raise Missing(rid)
            rec.update((k, v) for k, v in attrs.items() if k != key_attr)

    def delete(self, entity: str, rid: uuid.UUID) -> None:
        """Remove a record. Raises ``Missing``."""
        with self._lock:
            if self._data.get(entity, {}).pop(rid, None) is None:
                raise Missing(rid)

    def get(self, entity: str, rid: uuid.UUID) -> Record:
        """Return a copy of one record. Raises ``Missing``."""
        with self._lock:
            rec = self._data.get(entity, {}).get(rid)
            if rec is None:
                raise Missing(rid)
            return dict(rec)

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

    def clear(self) -> None:
        """Drop every record."""
        with self._lock:
            self._data.clear()
