"""Batch requests: the items of ``CrmClient.execute_multiple``, the same for every dialect.

Each item is a frozen value naming one write. ``idempotent`` answers the retry question for an item whose
batch lost its answer: resending it cannot duplicate anything (updates, deletes, upserts, creates with a
client-chosen id), so it is resent; an unkeyed create is *in doubt* and never resent.

    >>> from uuid import UUID
    >>> CreateRequest("account", {"name": "Contoso"}).idempotent
    False
    >>> UpsertRequest("account", {"name": "Contoso"}, keys={"accountnumber": "A-1"}).idempotent
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from crmload.errors import CrmLoadError

__all__ = ["BatchRequest", "BatchResult", "CreateRequest", "DeleteRequest", "UpdateRequest", "UpsertRequest"]


@dataclass(frozen=True, slots=True, kw_only=False)
class CreateRequest:
    """Create one record; with ``id`` the create is idempotent (a duplicate on resend means it landed)."""

    entity: str
    attrs: Mapping[str, Any]
    id: UUID | None = None
    name: str = field(default="Create", init=False, repr=False)

    @property
    def idempotent(self) -> bool:
        return self.id is not None


@dataclass(frozen=True, slots=True, kw_only=False)
class UpdateRequest:
    """Update the given attributes of one record."""

    entity: str
    id: UUID
    attrs: Mapping[str, Any]
    name: str = field(default="Update", init=False, repr=False)
    idempotent: bool = field(default=True, init=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=False)
class DeleteRequest:
    """Delete one record."""

    entity: str
    id: UUID
    name: str = field(default="Delete", init=False, repr=False)
    idempotent: bool = field(default=True, init=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=False)
class UpsertRequest:
    """Create or update one record found by ``id`` or by alternate ``keys`` (Organization service 7.1+)."""

    entity: str
    attrs: Mapping[str, Any]
    id: UUID | None = None
    keys: Mapping[str, Any] | None = None
    name: str = field(default="Upsert", init=False, repr=False)
    idempotent: bool = field(default=True, init=False, repr=False)


BatchRequest = CreateRequest | UpdateRequest | DeleteRequest | UpsertRequest
#: One item's outcome: the record's id (creates, upserts), None (updates, deletes), or its typed error.
BatchResult = UUID | None | CrmLoadError
