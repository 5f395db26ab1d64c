"""Run a plan: tiers of loads through import's ``Loader`` with one shared ``CrmClient``, then update passes.

Every create is ``Loader.run(CsvSource)``, exactly what ``crmload import`` runs, with the plan's journal
(``plan/state.py``), the input's rejects and in-doubt files, and a ``Gate`` (``plan/gate.py``). A load whose
self-references are acyclic in the data runs one pass per level over the same journal (rows of later levels
are held, done rows skipped as on ``--resume``); a deferred lookup is set afterwards by an update ``Loader``
over the same file, reading only the key and that column, with a journal of its own. The components of a
tier run in threads, sharing the client and so its rate, budget and connections.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmload.load.engine import Loader
from crmload.load.identity import file_identity
from crmload.load.journal import Journal, Target, public_url
from crmload.load.mapping import Mapper
from crmload.load.outfiles import output_encoding, output_paths
from crmload.load.progress import Progress
from crmload.load.rejects import RejectsWriter
from crmload.load.sizing import DEFAULT_BATCH_POLICY, BatchPolicy
from crmload.load.source import CsvSource
from crmload.load.summary import Summary
from crmload.plan.analysis import Analysis, LoadInfo, create_spec, link_spec
from crmload.plan.data import KeyIndex
from crmload.plan.gate import Failed, Gate
from crmload.plan.lookups import existing, missing_keys
from crmload.plan.summary import LoadResult, merge_client

__all__ = ["PlanRunner", "RunOptions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How a plan runs: the Loader's settings, shared by every load, and how journals are opened."""

    workers: int = 4
    batch_size: int | str = "auto"
    batch_policy: BatchPolicy = DEFAULT_BATCH_POLICY
    breaker: int = 20
    resume: bool = False
    restart: bool = False
    force: bool = False
    #: A self-reference deeper than this many levels takes the update pass (one pass per level costs a
    #: read of the file; a deep, narrow chain is cheaper as one batched update pass).
    max_levels: int = 16
    progress: bool = False
    #: A lookup to a key no row of the plan defines is checked in CRM; absent there, the row is rejected.
    verify_lookups: bool = False


class PlanRunner:
    """Run an analysed plan with one client. ``run()`` returns one ``LoadResult`` per load and update pass."""

    def __init__(
        self,
        analysis: Analysis,
        client: Any,
        state: Path,
        options: RunOptions,
        *,
        index: KeyIndex,
        resumed: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.analysis = analysis
        self.client = client
        self.state = state
        self.options = options
        self.index = index
        self.resumed = resumed
        self.failed = Failed()
        self.results: list[LoadResult] = []
        self._clock = clock
        self._lock = threading.Lock()
        self._active: set[Loader] = set()
        self._stopped = threading.Event()
        self._journals: dict[tuple[int, str], Journal] = {}
        self._checked: set[int] = set()
        self._concurrent = False
        #: True once ``stop()`` was called (Ctrl-C), even between two loads.
        self.interrupted = False

    # -- control ---------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the plan (Ctrl-C): running loads stop as ``Loader.stop`` does, no later load starts."""
        self.interrupted = True
        self._stopped.set()
        with self._lock:
            for loader in list(self._active):
                loader.stop()

    @property
    def halted(self) -> bool:
        """True once a load ended fatal or interrupted: nothing further runs."""
        return self._stopped.is_set()

    def close(self) -> None:
        """Close every journal the run opened."""
        for journal in self._journals.values():
            journal.close()
        self._journals.clear()

    # -- the run ---------------------------------------------------------------------------------------------
    def run(self) -> list[LoadResult]:
        """Open every journal, then run the tiers, parents first; stop after a tier where a load stopped."""
        for info in self.analysis.loads:
            self._journal(info, "create")
            if info.deferred:
                self._journal(info, "links")
        for tier in self.analysis.tiers:
            errors: list[BaseException] = []
            self._concurrent = len(tier) > 1
            if len(tier) == 1:
                self._component(tier[0])
            else:
                threads = [
                    threading.Thread(
                        target=self._guarded, args=(comp, errors), name=f"crmload-plan-{comp[0]}"
                    )
                    for comp in tier
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            if errors:
                raise errors[0]
            if self.halted:
                break
        self.results.sort(key=lambda r: (r.load, r.kind == "links"))
        return self.results

    def _guarded(self, comp: list[int], errors: list[BaseException]) -> None:
        try:
            self._component(comp)
        except BaseException as exc:  # raised again in run(), on the caller's thread
            errors.append(exc)
            self.stop()

    def _component(self, comp: list[int]) -> None:
        for i in comp:
            if self.halted:
                return
            self._load(self.analysis.loads[i])
        for i in comp:
            if self.halted:
                return
            if self.analysis.loads[i].deferred:
                self._links(self.analysis.loads[i])

    def _journal(self, info: LoadInfo, kind: str) -> Journal:
        got = self._journals.get((info.spec.index, kind))
        if got is not None:
            return got
        spec = info.spec
        suffix = ".links" if kind == "links" else ""
        path = self.state / f"{spec.index + 1:02d}-{spec.entity}{suffix}.sqlite"
        target = self._target(info, "update" if kind == "links" else spec.mode)
        journal = Journal.open(
            path, target, file_identity(spec.file), resume=self.resumed, restart=self.options.restart
        )
        self._journals[(spec.index, kind)] = journal
        return journal

    def _target(self, info: LoadInfo, mode: str) -> Target:
        return Target(
            url=public_url(str(getattr(self.client, "url", ""))),
            org=str(getattr(self.client, "org", "") or ""),
            entity=info.spec.entity,
            mode=mode,
            key=info.key,
        )

    def _load(self, info: LoadInfo) -> None:
        i = info.spec.index
        journal = self._journal(info, "create")
        if self.resumed:
            reopened = journal.forget_rejected("parent")
            if reopened:
                log.info("%s: %s rows held back by a failed parent are read again", info.spec.label, reopened)
        self.failed.set(i, journal.unsettled())
        held = {e.column for e in info.deferred}
        lookups = [lk for lk in info.lookups if lk[0] not in held]
        checks = [(attr, entity) for _column, attr, entity in lookups]
        missing = self._missing(info, lookups)
        self._recover({entity for _a, entity in checks})
        mapper = Mapper(info.spec.entity, spec=create_spec(info), key=info.key)
        writers = self._writers(info, journal, "")
        passes: list[Summary] = []
        started, before = self._clock(), journal.counts()
        for level in range(info.passes):
            if level:
                self.failed.set(i, journal.unsettled())
            # A run that began here holds settled levels itself; a resumed one needs the journal's states.
            exact = not self.resumed
            gate = Gate(
                i,
                self.index,
                self.failed,
                checks,
                levels=info.levels,
                level=level,
                exact=exact,
                missing=missing,
            )
            resume = self.resumed
            passes.append(self._pass(info, info.spec.mode, mapper, journal, writers, gate, resume))
            if passes[-1].fatal or passes[-1].interrupted:
                break
        self.failed.set(i, journal.unsettled())
        whole = self._whole(passes, journal, started, before)
        self._record(LoadResult(i, info.spec.label, "create", whole, len(passes)))

    def _links(self, info: LoadInfo) -> None:
        i = info.spec.index
        journal = self._journal(info, "links")
        if self.resumed:
            journal.forget_rejected("parent")
        checks = [(e.attribute, e.entity) for e in info.deferred]
        missing = self._missing(info, [(e.column, e.attribute, e.entity) for e in info.deferred])
        self._recover({entity for _a, entity in checks})
        mapper = Mapper(info.spec.entity, spec=link_spec(info), key=info.key)
        writers = self._writers(info, journal, ".links")
        gate = Gate(i, self.index, self.failed, checks, links=True, missing=missing)
        started, before = self._clock(), journal.counts()
        summary = self._pass(info, "update", mapper, journal, writers, gate, self.resumed)
        columns = sorted({e.attribute for e in info.deferred})
        label = f"{info.spec.label} links"
        self._record(
            LoadResult(i, label, "links", self._whole([summary], journal, started, before), 1, columns)
        )

    def _record(self, result: LoadResult) -> None:
        with self._lock:
            self.results.append(result)
        if result.summary.fatal or result.summary.interrupted:
            self._stopped.set()

    def _writers(
        self, info: LoadInfo, journal: Journal, suffix: str
    ) -> tuple[RejectsWriter, RejectsWriter | None]:
        src = info.spec.file
        rej, doubt = output_paths(src, None, Path(journal.path), dry_run=False, force=self.options.force)
        assert rej is not None
        if suffix:  # the update pass never has in-doubt rows (updates are idempotent)
            rej, doubt = rej.with_name(rej.name.replace(".rejects.csv", f"{suffix}.rejects.csv")), None
        enc = output_encoding(info.spec.encoding, src)

        def make(path: Path) -> RejectsWriter:
            return RejectsWriter(
                path,
                append=self.resumed,
                encoding=enc,
                delimiter=info.spec.delimiter,
                force=self.options.force,
            )

        return make(rej), make(doubt) if doubt is not None else None

    def _pass(  # noqa: PLR0917 - private step of _load/_links
        self,
        info: LoadInfo,
        mode: str,
        mapper: Mapper,
        journal: Journal,
        writers: tuple[RejectsWriter, RejectsWriter | None],
        gate: Gate,
        resume: bool,
    ) -> Summary:
        o = self.options
        loader = Loader(
            self.client,
            info.spec.entity,
            mode=mode,
            mapper=mapper,
            workers=o.workers,
            journal=journal,
            rejects=writers[0],
            in_doubt=writers[1],
            force=o.force,
            resume=resume,
            # One bar at a time: concurrent loads would draw over each other's.
            progress=Progress(enabled=o.progress and not self._concurrent, stats=self.client.stats),
            breaker=o.breaker,
            batch_size=o.batch_size,
            batch_policy=o.batch_policy,
            target=self._target(info, mode),
            gate=gate,
        )
        with self._lock:
            if self._stopped.is_set():
                loader.stop()
            self._active.add(loader)
        try:
            with CsvSource(info.spec.file, encoding=info.spec.encoding, delimiter=info.spec.delimiter) as src:
                summary = loader.run(src)
        finally:
            loader.close()
            with self._lock:
                self._active.discard(loader)
        for w in writers:
            if w is not None and w.count:
                w.append = True  # the next pass adds to this run's file
        return summary

    def _whole(
        self, passes: list[Summary], journal: Journal, started: float, before: dict[str, int]
    ) -> Summary:
        """The last pass's summary (the journal's counts are the load's), with the time, rate, client numbers
        and batches of all passes."""
        last = passes[-1]
        if len(passes) > 1:
            last.client = merge_client([p.client for p in passes])
            last.batches = sum(p.batches for p in passes)
            last.largest_batch = max(p.largest_batch for p in passes)
            rows = sum((p.mean_batch_size or 0) * p.batches for p in passes)
            last.mean_batch_size = round(rows / last.batches, 1) if last.batches else None
            faults: dict[str, int] = {}
            for p in passes:
                for code, n in p.item_faults_by_code.items():
                    faults[code] = faults.get(code, 0) + n
            last.item_faults_by_code = faults
        after = journal.counts()
        elapsed = max(self._clock() - started, 1e-9)
        settled = sum(after[s] - before[s] for s in ("done", "rejected", "in_doubt"))
        last.duration_s = round(elapsed, 3)
        last.records_per_s = round(max(settled, 0) / elapsed, 1)
        last.skipped_from_journal = sum(before[s] for s in ("done", "rejected", "in_doubt"))
        return last

    def _missing(
        self, info: LoadInfo, lookups: list[tuple[str, str, str]]
    ) -> dict[str, dict[Any, str]] | None:
        """With ``verify_lookups``: the keys these lookups name that neither the plan nor CRM holds."""
        if not self.options.verify_lookups or not lookups:
            return None
        return missing_keys(self.client, info.spec, lookups, self.index, trim=info.map_spec.trim)

    # -- parents fixed since ---------------------------------------------------------------------------------
    def _recover(self, entities: set[str]) -> None:
        """Ask CRM about failed rows of the loads of ``entities``: a record found (fixed and re-imported by
        hand) makes its row a good parent again. Once per load per run."""
        for info in self.analysis.loads:
            i = info.spec.index
            if info.spec.entity not in entities or i in self._checked:
                continue
            self._checked.add(i)
            lines = [ln for ln, (state, _e) in self.failed.rows.get(i, {}).items() if state != "pending"]
            ids = self.index.ids_of(info.spec.entity, i, lines)
            if not ids:
                continue
            found = existing(self.client, info.spec.entity, list(ids.values())) or set()
            fixed = [ln for ln, ident in ids.items() if ident in found]
            for line in fixed:
                self.failed.fixed.add((i, line))
                self.failed.rows[i].pop(line, None)
            if fixed:
                log.info(
                    "%s: %s failed rows exist in CRM now; their children load", info.spec.label, len(fixed)
                )
