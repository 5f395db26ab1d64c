"""What CRM holds for a plan's lookups: records of failed parent rows, and keys no row of the plan defines.

Both ask CRM by id, in ``pk In (...)`` reads of ``CHECK_BATCH`` ids (one RetrieveMultiple each), never by
count. A read that fails is never taken as an answer: the caller keeps trusting (``None``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import UUID

from crmload.errors import CrmLoadError
from crmload.load.keys import key_id
from crmload.load.mapping import Mapper
from crmload.load.source import CsvSource
from crmload.plan.data import KeyIndex
from crmload.plan.spec import LoadSpec

__all__ = ["CHECK_BATCH", "existing", "missing_keys"]

log = logging.getLogger(__name__)

#: Ids per existence check (one RetrieveMultiple ``pk In (...)``).
CHECK_BATCH = 200


def existing(client: object, entity: str, ids: Sequence[UUID]) -> set[UUID] | None:
    """The ``ids`` of ``entity`` records CRM holds; None when CRM could not be asked (logged)."""
    pk = Mapper(entity).primary_key
    found: set[UUID] = set()
    for start in range(0, len(ids), CHECK_BATCH):
        chunk = list(ids[start : start + CHECK_BATCH])
        try:
            for rec in client.retrieve_multiple(  # type: ignore[attr-defined]
                entity, where={pk: chunk}, columns=[pk], page_size=len(chunk)
            ):
                value = rec.get(pk)
                found.add(getattr(value, "id", value))
        except CrmLoadError as exc:
            log.warning("cannot ask CRM which %s records exist: %s", entity, exc)
            return None
    return found


def missing_keys(
    client: object,
    load: LoadSpec,
    lookups: Sequence[tuple[str, str, str]],
    index: KeyIndex,
    *,
    trim: bool = True,
) -> dict[str, dict[UUID, str]]:
    """``{entity: {id: key}}`` of the keys ``lookups`` name in ``load``'s file that no row of the plan defines
    and CRM does not hold (``--verify-lookups``). One read of the file, one check per ``CHECK_BATCH`` keys."""
    wanted: dict[str, dict[UUID, str]] = {}
    with CsvSource(load.file, encoding=load.encoding, delimiter=load.delimiter) as src:
        for row in src:
            for column, _attr, entity in lookups:
                text = row.values.get(column) or ""
                text = text.strip() if trim else text
                if not text:
                    continue
                ident = key_id(entity, text)
                if index.find(entity, ident) is None:
                    wanted.setdefault(entity, {})[ident] = text
    out: dict[str, dict[UUID, str]] = {}
    for entity, keys in wanted.items():
        found = existing(client, entity, list(keys))
        if found is not None:  # CRM could not say: the references stay trusted
            out[entity] = {i: t for i, t in keys.items() if i not in found}
    return out
