"""Batches for ``CrmClient``: ``execute_multiple`` and its conveniences, the same calls on every dialect.

On a dialect with batches (the Organization service's ExecuteMultiple) a batch is one call for the limiter
and one request on the wire. Its retries decide per item, by the phase rules of single calls:
- never sent (connect errors) or refused as busy: the client's retry policy resends the whole request;
- answer lost: items that cannot duplicate anything (``request.idempotent``: updates, deletes, upserts,
  creates with a client-chosen id) are resent, and a duplicate on resend means the keyed create had
  landed; unkeyed creates are *in doubt*: their result is the ``ResponseLostError``, and they are never
  resent. A lost answer also halves the size of the batches that follow (``batch_limit``); each answered
  batch doubles it back, up to the largest size the server has not refused;
- ``BatchTooLargeError`` (MaxBatchSize) comes before anything runs: the batch is split to the size the
  fault gives (or halved) and resent, and later batches keep to it.
On a dialect without batches (CRM 4.0) the same calls run one request per item.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from crmload.batch import (
    BatchRequest,
    BatchResult,
    CreateRequest,
    DeleteRequest,
    UpdateRequest,
    UpsertRequest,
)
from crmload.errors import (
    AuthenticationError,
    BatchTooLargeError,
    ConfigError,
    CrmLoadError,
    DuplicateRecord,
    ItemNotRunError,
    RecordNotFound,
    ResponseLostError,
    RetryExhaustedError,
)
from crmload.types import as_uuid

if TYPE_CHECKING:
    from crmload._client_stats import CallStats
    from crmload._server_budget import ServerBudget
    from crmload.retry import RetryPolicy
    from crmload.soap.dialect import Dialect

__all__ = ["BatchOps", "BatchStats"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_REQUEST_TYPES = (CreateRequest, UpdateRequest, DeleteRequest, UpsertRequest)
# Errors that belong to the run, not to an item: they stop the call instead of becoming per-item results.
_RUN_STOPPERS = (AuthenticationError, ConfigError)


class BatchStats:
    """Counters for the batch calls: batches sent and their items, splits, lost answers, item faults by code.

    Updated once per batch, not per record, so one lock costs nothing measurable.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()

    def batch(self, size: int, results: Iterable[BatchResult]) -> None:
        """Count one answered batch of ``size`` items and its items' faults (by CRM code, else error type)."""
        faults = Counter(
            (getattr(r, "code", None) or type(r).__name__) for r in results if isinstance(r, CrmLoadError)
        )
        with self._lock:
            self._counts["batches"] += 1
            self._counts["batch_items"] += size
            self._faults.update(faults)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counts, faults = dict(self._counts), dict(self._faults)
        batches = counts.get("batches", 0)
        return {
            "batches": batches,
            "batch_items": counts.get("batch_items", 0),
            "mean_batch_size": counts.get("batch_items", 0) / batches if batches else None,
            "batch_splits": counts.get("splits", 0),
            "batch_answers_lost": counts.get("lost", 0),
            "batch_items_in_doubt": counts.get("in_doubt", 0),
            "batch_item_faults_by_code": faults,
        }


class BatchOps:
    """Mixin of ``CrmClient``: batch calls over the client's one pipeline (limiter, retry, transport)."""

    if TYPE_CHECKING:
        _dialect: Dialect
        _stats: CallStats
        _policy: RetryPolicy
        _batch_limit: int
        _batch_ceiling: int
        _batch_stats: BatchStats
        _server: ServerBudget

        def _call(
            self, op: str, body: bytes, parse: Callable[[bytes], T], *, idempotent: bool, items: int = 1
        ) -> T: ...
        def create(self, entity: str, attrs: Mapping[str, object], *, id: Any = None) -> uuid.UUID: ...
        def update(self, entity: str, id: Any, attrs: Mapping[str, object]) -> None: ...
        def delete(self, entity: str, id: Any) -> None: ...

    # --- conveniences ---------------------------------------------------------------------------------------

    def create_many(
        self,
        entity: str,
        records: Iterable[Mapping[str, object]],
        ids: Iterable[uuid.UUID | str | None] | None = None,
        *,
        continue_on_error: bool = True,
    ) -> list[BatchResult]:
        """Create records; ``ids`` (optional, one per record) makes each create idempotent."""
        rows = list(records)
        keys = list(ids) if ids is not None else [None] * len(rows)
        if len(keys) != len(rows):
            raise ConfigError(f"create_many got {len(rows)} records but {len(keys)} ids")
        requests = [
            CreateRequest(entity, r, as_uuid(k) if k is not None else None)
            for r, k in zip(rows, keys, strict=True)
        ]
        return self.execute_multiple(requests, continue_on_error=continue_on_error)

    def update_many(
        self,
        entity: str,
        updates: Iterable[tuple[uuid.UUID | str, Mapping[str, object]]],
        *,
        continue_on_error: bool = True,
    ) -> list[BatchResult]:
        """Update records given as ``(id, attributes)`` pairs."""
        requests = [UpdateRequest(entity, as_uuid(i), attrs) for i, attrs in updates]
        return self.execute_multiple(requests, continue_on_error=continue_on_error)

    def upsert_many(
        self,
        entity: str,
        records: Iterable[Mapping[str, object]],
        *,
        keys: Sequence[str] | None = None,
        ids: Iterable[uuid.UUID | str] | None = None,
        continue_on_error: bool = True,
    ) -> list[BatchResult]:
        """Create or update records found by their ``keys`` attributes (an alternate key), or by ``ids``."""
        rows = list(records)
        if (keys is None) == (ids is None):
            raise ConfigError("upsert_many needs exactly one of keys= (alternate key attributes) or ids=")
        if keys is not None:
            requests = [
                UpsertRequest(
                    entity, {k: v for k, v in r.items() if k not in keys}, keys={k: r[k] for k in keys}
                )
                for r in rows
                if _has_keys(r, keys)
            ]
        else:
            id_list = list(ids or ())
            if len(id_list) != len(rows):
                raise ConfigError(f"upsert_many got {len(rows)} records but {len(id_list)} ids")
            requests = [UpsertRequest(entity, r, as_uuid(i)) for r, i in zip(rows, id_list, strict=True)]
        return self.execute_multiple(requests, continue_on_error=continue_on_error)

    def delete_many(
        self, entity: str, ids: Iterable[uuid.UUID | str], *, continue_on_error: bool = True
    ) -> list[BatchResult]:
        """Delete records by id."""
        requests = [DeleteRequest(entity, as_uuid(i)) for i in ids]
        return self.execute_multiple(requests, continue_on_error=continue_on_error)

    def upsert(
        self,
        entity: str,
        attrs: Mapping[str, object],
        *,
        id: uuid.UUID | str | None = None,
        keys: Mapping[str, object] | None = None,
    ) -> uuid.UUID | None:
        """Create or update one record found by ``id`` or alternate ``keys``; return its id when known.

        CRM 4.0 has no Upsert: there an ``id`` is required, and it runs an Update, then a keyed Create if the
        record is not there.
        """
        key = as_uuid(id) if id is not None else None
        if self._dialect.capabilities.upsert:
            codec: Any = self._dialect.codec
            body = codec.build_upsert(entity, attrs, id=key, keys=keys)
            return self._call("Upsert", body, codec.parse_upsert, idempotent=True).id  # type: ignore[no-any-return]
        if keys is not None or key is None:
            raise ConfigError(f"the {self._dialect.name} endpoint has no alternate keys: upsert needs id=")
        try:
            self.update(entity, key, attrs)
        except RecordNotFound:
            return self.create(entity, attrs, id=key)
        return key

    # --- execute_multiple -----------------------------------------------------------------------------------

    def execute_multiple(
        self,
        requests: Iterable[BatchRequest],
        *,
        continue_on_error: bool = True,
        batch_size: int | None = None,
    ) -> list[BatchResult]:
        """Run write requests and return one result per request, in order: an id, None, or its typed error.

        Args:
            requests: ``CreateRequest``/``UpdateRequest``/``DeleteRequest``/``UpsertRequest`` items.
            continue_on_error: go on after a faulted item (each item is its own transaction). When False,
                the items after the first fault are ``ItemNotRunError``.
            batch_size: the most items per request (None: the endpoint's largest batch). A MaxBatchSize
                fault or a lost answer lowers it further for this client.

        An item's error is its own (e.g. ``DuplicateRecord``); a lost answer makes unkeyed creates
        ``ResponseLostError`` (in doubt). Authentication and configuration errors are raised.
        """
        items = list(requests)
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)):
            raise ConfigError(f"batch_size must be a positive int or None, not {batch_size!r}")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int or None, not {batch_size!r}")
        for request in items:
            if not isinstance(request, _REQUEST_TYPES):
                raise ConfigError(f"not a batch request: {type(request).__name__}")
        if self._dialect.capabilities.max_batch <= 1:
            return self._one_by_one(items, continue_on_error)
        results: dict[int, BatchResult] = {}
        # Cut lazily, each request at the limit of the moment: a lost answer halves it, answers regrow it.
        chunks = deque([list(range(len(items)))] if items else [])
        stopped = False
        while chunks:
            chunk = chunks.popleft()
            size = self._chunk_size(batch_size)
            if len(chunk) > size:
                chunks.appendleft(chunk[size:])
                chunk = chunk[:size]
            if stopped:
                results.update((i, _not_run(i)) for i in chunk)
                continue
            split = self._run_chunk(items, chunk, continue_on_error, results)
            if split:
                chunks.extendleft(reversed(split))
                continue
            stopped = not continue_on_error and any(isinstance(results[i], CrmLoadError) for i in chunk)
        return [results[i] for i in range(len(items))]

    def _chunk_size(self, wanted: int | None = None) -> int:
        # The server budget caps a batch's execution time too (batch size x per-record server time).
        budget = self._server.max_batch() or self._batch_limit
        return max(
            1,
            min(self._batch_limit, self._dialect.capabilities.max_batch, wanted or self._batch_limit, budget),
        )

    def _run_chunk(
        self,
        items: list[BatchRequest],
        chunk: list[int],
        continue_on_error: bool,
        results: dict[int, BatchResult],
    ) -> list[list[int]] | None:
        """Send one batch until every item has a result; return smaller chunks instead if it was too large."""
        todo, lost, losses = chunk, False, 0
        codec: Any = self._dialect.codec
        while todo:
            batch = [items[i] for i in todo]

            def parse(body: bytes, batch: list[BatchRequest] = batch) -> list[BatchResult]:
                return codec.parse_execute_multiple(body, batch, continue_on_error=continue_on_error)  # type: ignore[no-any-return]

            body = codec.build_execute_multiple(batch, continue_on_error=continue_on_error)
            try:
                answer = self._call("ExecuteMultiple", body, parse, idempotent=False, items=len(batch))
            except BatchTooLargeError as exc:
                self._batch_stats.count("splits")
                return self._split(todo, exc)
            except ResponseLostError as exc:
                self._batch_stats.count("lost")
                losses += 1
                self._batch_limit = max(1, min(self._batch_limit, len(todo) // 2))
                todo, lost = self._after_loss(items, todo, exc, losses, results), True
                continue
            except _RUN_STOPPERS:
                raise
            except CrmLoadError as exc:  # the whole request failed (retries exhausted, a fault, a bad answer)
                results.update((i, exc) for i in todo)
                return None
            if not lost and self._batch_limit < self._batch_ceiling:  # an answer: lost answers were a blip
                self._batch_limit = min(self._batch_ceiling, self._batch_limit * 2)
            for i, result in zip(todo, answer, strict=True):
                results[i] = _settled_by_loss(items[i], result, self._stats) if lost else result
            self._batch_stats.batch(len(todo), (results[i] for i in todo))
            todo = []
        return None

    def _after_loss(
        self,
        items: list[BatchRequest],
        todo: list[int],
        exc: ResponseLostError,
        losses: int,
        results: dict[int, BatchResult],
    ) -> list[int]:
        """Settle the items a lost answer leaves in doubt; return those that are safe to resend."""
        resend = []
        for i in todo:
            if not items[i].idempotent:
                results[i] = exc  # in doubt: maybe created, never resent
                self._batch_stats.count("in_doubt")
            elif losses >= self._policy.max_attempts:
                results[i] = RetryExhaustedError(
                    f"gave up after {losses} lost answers", last=exc, attempts=losses
                )
            else:
                resend.append(i)
        if resend:
            log.info("batch answer lost; resending %d idempotent item(s) of %d", len(resend), len(todo))
        return resend

    def _split(self, todo: list[int], exc: BatchTooLargeError) -> list[list[int]]:
        limit = (
            exc.max_batch_size if exc.max_batch_size and exc.max_batch_size < len(todo) else len(todo) // 2
        )
        if limit < 1:
            raise exc  # one item refused as too large: nothing smaller to send
        self._batch_limit = min(self._batch_limit, limit)
        self._batch_ceiling = min(self._batch_ceiling, limit)  # the server's own limit: kept for good
        log.info("batch of %d over the server's MaxBatchSize; resending as batches of %d", len(todo), limit)
        return [todo[i : i + limit] for i in range(0, len(todo), limit)]

    def _one_by_one(self, items: list[BatchRequest], continue_on_error: bool) -> list[BatchResult]:
        """The batch calls on a dialect without batches: one request per item, same results."""
        out: list[BatchResult] = []
        for index, request in enumerate(items):
            if out and not continue_on_error and isinstance(out[-1], CrmLoadError):
                out.extend(
                    ItemNotRunError(f"item {i} was not run: an earlier item faulted")
                    for i in range(index, len(items))
                )
                break
            try:
                out.append(self._single(request))
            except _RUN_STOPPERS:
                raise
            except CrmLoadError as exc:
                out.append(exc)
        return out

    def _single(self, request: BatchRequest) -> BatchResult:
        if isinstance(request, CreateRequest):
            return self.create(request.entity, request.attrs, id=request.id)
        if isinstance(request, UpdateRequest):
            self.update(request.entity, request.id, request.attrs)
            return None
        if isinstance(request, DeleteRequest):
            self.delete(request.entity, request.id)
            return None
        return self.upsert(request.entity, request.attrs, id=request.id, keys=request.keys)


def _not_run(index: int) -> ItemNotRunError:
    return ItemNotRunError(f"item {index} was not run: an earlier item faulted and the batch stopped")


def _settled_by_loss(request: BatchRequest, result: BatchResult, stats: CallStats) -> BatchResult:
    """After a lost answer, a keyed create's duplicate or a delete's not-found on resend means it landed."""
    if isinstance(result, DuplicateRecord) and isinstance(request, CreateRequest) and request.id is not None:
        log.info("keyed create %s: an attempt whose answer was lost had landed", request.id)
        stats.confirmed_duplicate()
        return request.id
    if isinstance(result, RecordNotFound) and isinstance(request, DeleteRequest):
        return None
    return result


def _has_keys(record: Mapping[str, object], keys: Sequence[str]) -> bool:
    missing = [k for k in keys if k not in record]
    if missing:
        raise ConfigError(f"upsert_many: a record lacks its key attribute(s) {', '.join(missing)}")
    return True
