"""The Loader's workers: take a batch of rows from the queue, send it, journal every row's end in one go.

A worker takes up to ``sizer.size()`` consecutive rows (one worker at a time, so a batch is a run of lines),
and then, per batch:
1. marks every row in flight (``attempts + 1``) in one journal write, committed before the send when the
   batch holds an unkeyed Create: only that tells a ``--resume`` after a crash that the row may have landed;
2. sends it through ``batches.send_rows`` (one ExecuteMultiple, or a single row's calls for a batch of 1);
3. walks the results in row order: the circuit breaker sees each row's fault in send order (a ticket per
   row), each fault becomes that row's reject (rejects file: line, phase, the server's message), an unkeyed
   Create whose batch lost its answer is in doubt;
4. writes every row's end in one journal transaction (``Journal.settle_many``), committed at once for a
   batch of more than one row; a batch of one keeps the journal's grouped commits (the 2007 cost).
A crash between 1 and 4 leaves the batch's rows pending with ``attempts > 0``: ``--resume`` settles them as
it settles single rows (keyed by Retrieve or an idempotent resend, unkeyed in doubt).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from crmload.errors import CrmFault, CrmLoadError
from crmload.load.batches import BatchCounters, Sent, send_rows
from crmload.load.send import classify, proves_not_applied
from crmload.load.sizing import Feedback, Sizer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from crmload.load.breaker import Breaker
    from crmload.load.journal import Journal, Settled
    from crmload.load.mapping import Mapper
    from crmload.load.progress import Progress
    from crmload.load.reader import _Work
    from crmload.load.rejects import RejectsWriter

__all__ = ["IN_DOUBT", "SendOps"]

log = logging.getLogger(__name__)

IN_DOUBT = "the Create may have been applied before its answer was lost; not re-sent (check CRM)"


class SendOps:
    """Mixin of ``Loader``: the worker side (taking batches, sending, journalling results)."""

    if TYPE_CHECKING:
        client: Any
        entity: str
        mode: str
        mapper: Mapper
        journal: Journal | None
        in_doubt: RejectsWriter | None
        rejects: RejectsWriter | None
        progress: Progress
        sizer: Sizer
        counters: BatchCounters
        _stop: threading.Event
        _take_lock: threading.Lock
        _breaker: Breaker[tuple[_Work, str, str]]

        def _set_fatal(self, exc: BaseException) -> None: ...
        def _reject(
            self, line: int, key: str | None, phase: str, error: str, values: Mapping[str, Any]
        ) -> None: ...

    def _worker(self, work: queue.Queue[_Work | None]) -> None:
        while True:
            batch, last = self._take(work)
            if batch and not self._stop.is_set():  # once stopped, leave them pending: --resume sends them
                try:
                    self._send_batch(batch)
                except Exception as exc:
                    self._set_fatal(exc)
            if last:
                return

    def _take(self, work: queue.Queue[_Work | None]) -> tuple[list[_Work], bool]:
        """Up to ``sizer.size()`` queued rows, in line order; True when the end-of-work mark was taken."""
        size = self.sizer.size()
        with self._take_lock:
            batch: list[_Work] = []
            while len(batch) < size:
                item = work.get()
                if item is None:
                    return batch, True
                batch.append(item)
                if self._stop.is_set():
                    break
        return batch, False

    def _send_batch(self, batch: list[_Work]) -> None:
        assert self.journal is not None
        unkeyed = self.mode in ("create", "upsert") and any(w.mapped.id is None for w in batch)
        self.journal.mark_sending_many([w.line for w in batch], durable=unkeyed)
        tickets = self._breaker.tickets(len(batch))
        epoch = self.sizer.epoch
        # Only an adaptive size needs to know how the call went (a fixed size, CRM 4.0's 1, learns nothing).
        trace = getattr(self.client, "call_trace", None) if self.sizer.adaptive else None
        before = trace() if trace is not None else None
        results = send_rows(self.client, self.entity, self.mode, [w.mapped for w in batch])
        if before is not None:
            seen = trace() - before  # type: ignore[misc]
            self.sizer.record(Feedback(len(batch), seen.answered_s, seen.busy, seen.lost, epoch))
        self.counters.add(len(batch), results)
        settled: list[Settled] = []
        fatal: CrmLoadError | None = None
        for w, ticket, sent in zip(batch, tickets, results, strict=True):
            result = self._landed_before(w, sent) if w.resent and isinstance(sent, CrmFault) else sent
            if isinstance(result, CrmLoadError):
                fatal = self._failed(w, result, ticket, settled) or fatal
                continue
            crm_id, outcome = result
            if outcome == "already_present" and w.resent:
                outcome = "created"  # sent before a crash, whose answer was never recorded: it landed then
            settled.append((w.line, "done", str(crm_id) if crm_id else None, outcome, None, None, False))
            if self._breaker.holding:
                self._release(self._breaker.success(ticket), settled)
        self.journal.settle_many(settled, commit=len(batch) > 1)
        for _ in range(sum(1 for s in settled if s[1] == "done")):
            self.progress.add("done")
        if fatal is not None:
            self._set_fatal(fatal)

    def _landed_before(self, w: _Work, fault: CrmFault) -> Sent:
        """A keyed Create sent again after a crash met a fault: if its record is there, the crashed run's
        attempt landed (the fault is about the retry, e.g. the server's data changed since), so it is done."""
        if self.mode != "create" or w.mapped.id is None:
            return fault
        try:
            self.client.retrieve(self.entity, w.mapped.id, columns=[self.mapper.primary_key])
        except CrmLoadError:
            return fault
        return w.mapped.id, "created"

    def _failed(
        self, w: _Work, exc: CrmLoadError, ticket: int, settled: list[Settled]
    ) -> CrmLoadError | None:
        """Journal (into ``settled``) what ``exc`` means for row ``w``; return it when it stops the run."""
        keyed = w.mapped.id is not None
        verdict, phase = classify(exc, keyed=keyed, mode=self.mode)
        if verdict == "reject":
            self._fault(w, exc, phase, ticket, settled)
        elif verdict == "in_doubt":
            error = f"{IN_DOUBT}: {exc}"
            settled.append((w.line, "in_doubt", None, None, phase, error, False))
            if self.in_doubt is not None:
                self.in_doubt.write(w.line, phase, error, w.values)
            self.progress.add("in_doubt")
        else:
            if not keyed and proves_not_applied(exc):
                # never applied: --resume sends it, not "in doubt"
                settled.append((w.line, None, None, None, None, None, True))
            return exc
        return None

    def _fault(self, w: _Work, exc: CrmLoadError, phase: str, ticket: int, settled: list[Settled]) -> None:
        """Reject a row that failed, unless the breaker holds it (pending) as part of a run-level streak."""
        error = _send_error(exc)
        action, released = self._breaker.fault(exc, (w, phase, error), ticket)
        if action in ("trip", "pending") and self._breaker.tripped is not None:
            # First, and by every worker that meets the fault: each row sent from now on fails alike.
            self._set_fatal(self._breaker.tripped)
        self._release(released, settled)
        if action == "reject":
            self._reject_row(w, phase, error, settled)
        elif w.mapped.id is None:  # CRM refused it: not applied, so never "in doubt" on resume
            settled.append((w.line, None, None, None, None, None, True))

    def _release(self, held: list[tuple[_Work, str, str]], settled: list[Settled]) -> None:
        for w, phase, error in held:  # the streak broke: these faults were the rows' own after all
            self._reject_row(w, phase, error, settled)

    def _reject_row(self, w: _Work, phase: str, error: str, settled: list[Settled]) -> None:
        settled.append((w.line, "rejected", None, None, phase, error, False))
        if self.rejects is not None:
            self.rejects.write(w.line, phase, error, w.values)
        self.progress.add("rejected", reason=f"{phase}: {error}")
        log.info("line %s rejected (%s): %s", w.line, phase, error)

    # -- resume ----------------------------------------------------------------------------------------------
    def _settle_maybe_sent(self) -> None:
        """Settle rows an earlier run may have sent without recording the answer, before sending new ones.

        An unkeyed Create is in doubt: only CRM can tell whether it landed. Every other row is sent again
        as it is, in a batch with the rest (idempotent by its id); a keyed Create that meets its own record
        then is done as created (``_send_batch``), as a Retrieve per row would have found, at a batch's cost.
        """
        assert self.journal is not None
        for line, _key, crm_id, state in self.journal.maybe_sent():
            if crm_id is None:
                self.journal.settle(line, "in_doubt", phase="send", error=IN_DOUBT)
            elif state == "in_doubt":
                self.journal.settle(line, "pending")
        self.journal.flush()

    def _reject_held(self, held: list[tuple[_Work, str, str]]) -> None:
        """Reject rows the breaker held, outside a batch (the run's end)."""
        for w, phase, error in held:
            self._reject(w.line, w.mapped.key, phase, error, w.values)


def _send_error(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}{f' {code}' if code else ''}: {exc}"
