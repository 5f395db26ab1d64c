"""A tiny in-memory stand-in for CrmClient, for engine unit tests (no sockets)."""

from __future__ import annotations

import threading
import uuid
from typing import Any
from uuid import UUID

from crmload.errors import DuplicateRecord, RecordNotFound


class FakeClient:
    """Keeps records per entity; can raise a chosen error for chosen calls."""

    url = "http://fake.invalid/MSCRMServices/2007/CrmService.asmx"
    org = "Fake"

    def __init__(self, fail: Any = None) -> None:
        self.store: dict[str, dict[UUID, dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail = fail  # callable(op, entity, attrs, id) -> Exception | None
        self._lock = threading.Lock()

    def _maybe_fail(self, op: str, entity: str, attrs: Any, id: UUID | None) -> None:
        if self.fail is not None:
            exc = self.fail(op, entity, attrs, id)
            if exc is not None:
                raise exc

    def create(self, entity: str, attrs: dict[str, Any], *, id: UUID | None = None) -> UUID:
        with self._lock:
            self.calls.append(("create", entity))
            self._maybe_fail("create", entity, attrs, id)
            table = self.store.setdefault(entity, {})
            new = id or uuid.uuid4()
            if new in table:
                raise DuplicateRecord("duplicate")
            table[new] = dict(attrs)
            return new

    def update(self, entity: str, id: UUID, attrs: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append(("update", entity))
            self._maybe_fail("update", entity, attrs, id)
            table = self.store.setdefault(entity, {})
            if id not in table:
                raise RecordNotFound("missing")
            table[id].update(attrs)

    def delete(self, entity: str, id: UUID) -> None:
        with self._lock:
            self.calls.append(("delete", entity))
            self._maybe_fail("delete", entity, None, id)
            if self.store.setdefault(entity, {}).pop(id, None) is None:
                raise RecordNotFound("missing")

    def retrieve(self, entity: str, id: UUID, columns: Any = None) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("retrieve", entity))
            rec = self.store.setdefault(entity, {}).get(id)
            if rec is None:
                raise RecordNotFound("missing")
            return dict(rec)

    def stats(self) -> dict[str, Any]:
        return {"calls": len(self.calls), "sockets_opened": 1}
