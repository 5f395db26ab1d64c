"""Deterministic record ids: ``uuid5(namespace for entity, key value)``.

This is the one place the id of a keyed record is computed. A run with ``--key account_key`` gives the account
whose key is ``"A-17"`` the id ``key_id("account", "A-17")``; a contact file can then point its
``parentcustomerid`` at that account without querying CRM, and a re-run or a retry addresses the same record.

The namespace of an entity is ``uuid5(NAMESPACE_URL, "crmload:entity:" + entity)`` with the entity's logical
name in lower case. It never changes: changing it would orphan every record loaded before.

Example::

    >>> str(key_id("account", "A-17")) == str(key_id("ACCOUNT", "A-17"))
    True
"""

from __future__ import annotations

from functools import lru_cache
from uuid import NAMESPACE_URL, UUID, uuid5

__all__ = ["entity_namespace", "key_id"]


@lru_cache(maxsize=256)
def entity_namespace(entity: str) -> UUID:
    """Return the uuid5 namespace of ``entity`` (case-insensitive logical name)."""
    return uuid5(NAMESPACE_URL, "crmload:entity:" + entity.lower())


def key_id(entity: str, value: str) -> UUID:
    """Return the deterministic id of the ``entity`` record whose source key is ``value`` (used as is)."""
    return uuid5(entity_namespace(entity), value)
