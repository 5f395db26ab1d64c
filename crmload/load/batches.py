"""The loader's batch seam: a batch of mapped rows out, one outcome per row back, in row order.

A batch of one is a single row's calls (``send.send_one``: CRM 4.0, or ``--batch-size 1``); a larger batch is
one ``CrmClient.execute_multiple`` (one ExecuteMultiple per batch, split further only by the client's own
limit). Either way each row gets ``(crm id, outcome)`` or its own typed error, which ``send.classify`` turns
into reject, in doubt or fatal exactly as for a single call:
- create: a keyed row's ``DuplicateRecord`` is ``already_present``; an unkeyed row whose batch lost its answer
  gets the ``ResponseLostError`` (in doubt; the client never resends it);
- update/delete by id; a delete's ``RecordNotFound`` is ``already_absent``;
- upsert: one ``UpsertRequest`` by id (outcome ``upserted``: the server does not say which it did).
A value the codec cannot put into XML fails building the whole request, before anything is sent: the batch
is halved until the row that carries it is alone, so it costs that row only.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from crmload.batch import BatchRequest, CreateRequest, DeleteRequest, UpdateRequest, UpsertRequest
from crmload.errors import ConfigError, CrmLoadError, DuplicateRecord, EncodingError, RecordNotFound
from crmload.load.mapping import Mapped
from crmload.load.send import send_one

__all__ = ["BatchCounters", "Sent", "send_rows"]

#: One row's result: ``(crm id, outcome)``, or the error that ended it.
Sent = tuple[UUID | None, str] | CrmLoadError


def send_rows(client: Any, entity: str, mode: str, recs: Sequence[Mapped]) -> list[Sent]:
    """Send ``recs`` as one batch; return one result per row, in order. Never raises a ``CrmLoadError``."""
    if len(recs) == 1:
        try:
            return [send_one(client, entity, mode, recs[0])]
        except CrmLoadError as exc:
            return [exc]
    requests = [_request(entity, mode, r) for r in recs]
    try:
        results = client.execute_multiple(requests, batch_size=len(requests))
    except EncodingError:
        half = len(recs) // 2
        return send_rows(client, entity, mode, recs[:half]) + send_rows(client, entity, mode, recs[half:])
    except CrmLoadError as exc:  # refused credentials or settings: the run's error, every row's end
        return [exc] * len(recs)
    return [_outcome(mode, r, res) for r, res in zip(recs, results, strict=True)]


def _request(entity: str, mode: str, rec: Mapped) -> BatchRequest:
    if mode == "create":
        # A null on Create is the same as no value (as send_one sends it).
        return CreateRequest(entity, {k: v for k, v in rec.attrs.items() if v is not None}, rec.id)
    if rec.id is None:  # the reader rejects these first; kept as a guard
        raise ConfigError(f"--mode {mode} needs an id")
    if mode == "update":
        return UpdateRequest(entity, rec.id, rec.attrs)
    if mode == "delete":
        return DeleteRequest(entity, rec.id)
    if mode == "upsert":
        return UpsertRequest(entity, rec.attrs, rec.id)
    raise ConfigError(f"unknown mode {mode!r}")


def _outcome(mode: str, rec: Mapped, result: UUID | CrmLoadError | None) -> Sent:
    if isinstance(result, CrmLoadError):
        if mode == "create" and rec.id is not None and isinstance(result, DuplicateRecord):
            return rec.id, "already_present"
        if mode == "delete" and isinstance(result, RecordNotFound):
            return rec.id, "already_absent"
        return result
    if mode == "create":
        return result or rec.id, "created"
    if mode == "upsert":
        return result or rec.id, "upserted"
    return rec.id, "updated" if mode == "update" else "deleted"


class BatchCounters:
    """What the run's batches did, for the summary: batches sent, rows in them, item faults by code.

    Updated once per batch under one lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batches = 0
        self.rows = 0
        self.largest = 0
        self.faults: Counter[str] = Counter()

    def add(self, size: int, results: Sequence[Sent]) -> None:
        """Count one batch of ``size`` rows and its rows' faults (CRM code, else the error's type)."""
        faults = Counter(
            (getattr(r, "code", None) or type(r).__name__) for r in results if isinstance(r, CrmLoadError)
        )
        with self._lock:
            self.batches += 1
            self.rows += size
            self.largest = max(self.largest, size)
            self.faults.update(faults)

    def snapshot(self) -> dict[str, Any]:
        """``batches``, ``mean_batch_size``, ``largest_batch``, ``item_faults_by_code``."""
        with self._lock:
            return {
                "batches": self.batches,
                "mean_batch_size": round(self.rows / self.batches, 1) if self.batches else None,
                "largest_batch": self.largest,
                "item_faults_by_code": dict(sorted(self.faults.items())),
            }
