"""The Loader: stream records through mapping, a bounded queue and N workers into CRM, journalling every row.

One reader (the calling thread, ``load/reader.py``) reads, maps and journals rows in chunks; workers
(``load/worker.py``) take them in batches of ``sizer.size()`` rows (``load/sizing.py``: a number, or ``auto``
on the Organization service; 1 on CRM 4.0) and send each batch as one ExecuteMultiple (``load/batches.py``),
sharing one thread-safe ``CrmClient``. Memory is bounded by the chunk, the batch and the queue, whatever the
input's size. Every row ends
``done``, ``rejected`` (also written to the rejects file) or ``in_doubt``; a fatal error (credentials
refused, server gone after every retry) stops the run with the rest ``pending``, and ``--resume`` continues
from there.

Modes:
- create: with an id (``--key`` or an id column) a ``DuplicateRecord`` means the row is already there; it
  is counted ``already_present`` and done.
- update: Update by id; a row without one is rejected.
- upsert: Create first, Update on ``DuplicateRecord``. A migration's first pass (and a resumed one) meets
  mostly new records, so this costs one call per row there; Update-first would cost two. In a batch it is
  one UpsertRequest per row (outcome ``upserted``).
- delete: Delete by id; ``RecordNotFound`` counts as done (``already_absent``): the record is gone anyway.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from crmload.errors import ConfigError, JournalError
from crmload.load.batches import BatchCounters
from crmload.load.breaker import DEFAULT_BREAKER_THRESHOLD, Breaker
from crmload.load.journal import FileIdentity, Journal, Target, file_identity, public_url
from crmload.load.mapping import Mapper, MapSpec
from crmload.load.progress import Progress
from crmload.load.reader import ReadOps, RowGate, _Fatal, _rows, _Work
from crmload.load.rejects import RejectsWriter, open_writer
from crmload.load.shard import Shard
from crmload.load.sizing import DEFAULT_BATCH_POLICY, BatchPolicy, Sizer, parse_size, sizer_for
from crmload.load.source import CsvSource
from crmload.load.status import OTHER_SHARDS, SOURCE_ROWS
from crmload.load.summary import Summary, client_numbers, stats_delta
from crmload.load.worker import SendOps

__all__ = ["MODES", "Loader"]

log = logging.getLogger(__name__)

MODES = ("create", "update", "upsert", "delete")


class Loader(ReadOps, SendOps):
    """Push a stream of records into one CRM entity, exactly once per row, with a journal and a rejects file.

    Args:
        client: a ``CrmClient`` (None only with ``dry_run``).
        entity: the target entity's logical name.
        mode: create, update, upsert or delete.
        key: the column whose value gives each record's id, ``uuid5(entity namespace, value)``.
        mapper: a compiled ``Mapper``; by default built from ``map_spec``, ``key`` and the bundled metadata.
        workers: concurrent calls (threads sharing ``client``).
        journal: a ``Journal``, a path for one, or None for an in-memory journal (no resume).
        rejects: a ``RejectsWriter``, a path for one, or None (rejects only counted and journalled; a dry
            run then lists them in ``Summary.rejected_rows``).
        in_doubt: the same for in-doubt rows (``FILE.in-doubt.csv``); rewritten by every run, a resume's
            included, so it lists exactly the rows in doubt now. Unused by a dry run.
        force: let a path replace an existing file that is not a crmload output file.
        resume / restart: how to open a journal that already holds this run.
        retarget: with ``resume``, move the run to the client's URL even if rows may have landed at the
            journal's old one (without it the URL moves only while nothing was sent successfully).
        progress: counters and bar; a silent one by default.
        breaker: sent rows in a row failing with one run-level fault (privilege, organisation, unknown
            entity or attribute) that stop the run, those rows left pending (``load/breaker.py``); 0: never.
        batch_size: rows per request: ``"auto"`` (adaptive on an endpoint with batches, 1 on CRM 4.0) or a
            number (at most the endpoint's largest batch); a batch is one ExecuteMultiple (``load/worker``).
        batch_policy: the ``auto`` size's target server time and bounds (``load/sizing.BatchPolicy``).
        read_chunk: rows read, mapped and journalled as pending together.
        shard: only the rows of this ``Shard`` (``load/shard.py``); the others are counted, not read.
        gate: asked about every mapped row before it is journalled (``load/reader.RowGate``): send it, hold
            it for a later run, or reject it (phase "parent"): a plan's ordering and cascade.

    Example::

        >>> with CrmClient(url, org="Contoso") as client:                        # doctest: +SKIP
        ...     summary = Loader(client, "account", key="code").run([{"code": "A-1", "name": "Contoso"}])
        ...     assert summary.balanced
    """

    def __init__(
        self,
        client: Any,
        entity: str,
        *,
        mode: str = "create",
        key: str | None = None,
        mapper: Mapper | None = None,
        map_spec: MapSpec | None = None,
        workers: int = 4,
        journal: Journal | str | Path | None = None,
        rejects: RejectsWriter | str | Path | None = None,
        in_doubt: RejectsWriter | str | Path | None = None,
        force: bool = False,
        resume: bool = False,
        restart: bool = False,
        retarget: bool = False,
        dry_run: bool = False,
        progress: Progress | None = None,
        batch_size: int | str = "auto",
        batch_policy: BatchPolicy = DEFAULT_BATCH_POLICY,
        read_chunk: int = 200,
        target: Target | None = None,
        clock: Callable[[], float] = time.monotonic,
        breaker: int = DEFAULT_BREAKER_THRESHOLD,
        shard: Shard | None = None,
        gate: RowGate | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if workers < 1:
            raise ConfigError("workers must be at least 1")
        if client is None and not dry_run:
            raise ConfigError("a client is needed unless dry_run is set")
        self.client = client
        self.entity = entity.lower()
        self.mode = mode
        self.mapper = mapper or Mapper(self.entity, spec=map_spec, key=key)
        self.workers = workers
        self.dry_run = dry_run
        self.progress = progress or Progress()
        self.read_chunk = read_chunk
        self.shard = shard
        self.gate = gate
        self.sizer: Sizer = sizer_for(client, parse_size(batch_size), batch_policy, dry_run=dry_run)
        self.counters = BatchCounters()
        self._take_lock = threading.Lock()
        self.target = target or Target(
            url=public_url(_client_attr(client, "url", "_transport")),
            org=_client_attr(client, "org", "_codec"),
            entity=self.entity,
            mode=mode,
            key=self.mapper.key,
            shard=shard.label if shard is not None else None,
        )
        self._journal_arg = journal
        self._rejects_arg, self._in_doubt_arg, self._force = rejects, in_doubt, force
        # A dry run with nowhere to write its rejects reports them in the summary instead.
        self._findings: list[dict[str, Any]] | None = [] if dry_run and rejects is None else None
        self._resume, self._restart, self._retarget = resume, restart, retarget
        self._clock = clock
        self._stop = threading.Event()
        self._fatal: BaseException | None = None
        self._interrupted = False
        self._breaker: Breaker[tuple[_Work, str, str]] = Breaker(breaker)
        self.journal: Journal | None = None
        self.rejects: RejectsWriter | None = None
        self.in_doubt: RejectsWriter | None = None
        self._skipped = 0
        self._seen = self._other_shards = 0  # rows the source gave, and those of other shards
        self._read_all = False
        self._stats_before: dict[str, Any] = {}
        self._source: CsvSource | None = None

    def stop(self) -> None:
        """Stop the run early (Ctrl-C): calls in flight finish, nothing new is sent, the rest stays pending.

        Safe from a signal handler or another thread; ``run`` then returns a summary with ``interrupted``.
        """
        self._interrupted = True
        self._stop.set()

    # -- set-up ----------------------------------------------------------------------------------------------
    def _open(self, source: CsvSource | None) -> None:
        ident: FileIdentity | None = file_identity(source.path) if source is not None else None
        j = self._journal_arg
        if isinstance(j, Journal):
            self.journal = j
        else:
            path = ":memory:" if j is None or self.dry_run else j
            self.journal = Journal.open(
                path, self.target, ident, resume=self._resume, restart=self._restart, retarget=self._retarget
            )
        r, d = self._rejects_arg, None if self.dry_run else self._in_doubt_arg
        # Neither output may be the other one, the input or the journal.
        r_path, d_path = _path_of(r), _path_of(d)
        self.rejects = open_writer(
            r,
            source=source,
            flag="--rejects",
            protected={"journal": self.journal.path, "in-doubt file": d_path},
            append=self._resume and not self._restart,
            force=self._force,
        )
        self.in_doubt = open_writer(
            d,
            source=source,
            flag="in-doubt file",
            protected={"journal": self.journal.path, "rejects file": r_path},
            append=False,  # rewritten by every run, so it lists the rows in doubt now
            force=self._force,
        )
        if source is not None and self._resume and not self.dry_run:
            self.journal.verify_source(source.digests(), str(source.path))  # before anything is sent

    # -- the run ---------------------------------------------------------------------------------------------
    def run(self, rows: Iterable[Mapping[str, Any]] | CsvSource) -> Summary:
        """Load every row of ``rows`` (dicts, or a ``CsvSource``) and return the summary."""
        source = self._source = rows if isinstance(rows, CsvSource) else None
        if source is not None and source._reader is None:
            source.open()
        if source is not None and source.header:  # an empty file has nothing to check, or to load
            self.mapper.prepare(source.header)
            self._check_mode_needs_id(source)
        self._open(source)
        assert self.journal is not None
        self._start_progress(source)
        started = self._clock()
        self._stats_before = self.client.stats() if self.client is not None and not self.dry_run else {}
        pool: list[threading.Thread] = []
        # Room for a whole batch to gather while the workers' batches are out.
        work: queue.Queue[_Work | None] = queue.Queue(maxsize=max(self.workers * 4, 2 * self.sizer.size()))
        try:
            if self._resume and not self.dry_run:
                self._settle_maybe_sent()
            if not self.dry_run:
                pool = [
                    threading.Thread(
                        target=self._worker, args=(work,), name=f"crmload-worker-{i}", daemon=True
                    )
                    for i in range(self.workers)
                ]
                for t in pool:
                    t.start()
            self._read(_rows(rows), work)
        except _Fatal:
            pass
        except JournalError as exc:  # the journal cannot be written: stop as fatal, the rest stays pending
            self._set_fatal(exc)
        except BaseException:
            self._stop.set()  # Ctrl-C or a bug: workers drop what is queued (it stays pending) and stop
            raise
        finally:
            self._finish(pool, work)
        return self._summary(started)

    def _start_progress(self, source: CsvSource | None) -> None:
        """Progress against the file's size, from the rows an earlier run settled (``--resume``)."""
        assert self.journal is not None
        base = 0
        if self._resume:
            c = self.journal.counts()
            base = c["done"] + c["rejected"] + c["in_doubt"]
        size = source.path.stat().st_size if source is not None else None
        self.progress.start(size_bytes=size, base=base)

    def _check_mode_needs_id(self, source: CsvSource | None) -> None:
        if self.mode == "create" or self.mapper.key or source is None:
            return
        if not any(
            self.mapper.column(h) and self.mapper.column(h).attribute == self.mapper.primary_key  # type: ignore[union-attr]
            for h in source.header
        ):
            raise ConfigError(f"--mode {self.mode} needs --key COLUMN or a {self.mapper.primary_key} column")

    def _finish(self, pool: list[threading.Thread], work: queue.Queue[_Work | None]) -> None:
        for _ in pool:
            work.put(None)
        for t in pool:
            t.join()
        self._reject_held(self._breaker.drain())
        self.progress.close()
        for writer in (self.rejects, self.in_doubt):
            if writer is not None:
                writer.close()
        assert self.journal is not None
        try:
            self.journal.flush()
            if self._read_all and not self.dry_run:  # the input's length, for ``crmload status``
                seen, others = str(self._seen), str(self._other_shards)
                self.journal.write_meta([(SOURCE_ROWS, seen), (OTHER_SHARDS, others)])
        except JournalError as exc:
            self._set_fatal(exc)
        finally:
            if not isinstance(self._journal_arg, Journal):  # ours: the next run may begin, even unclosed
                self.journal.end_run()

    def _reject(  # noqa: PLR0917 - private; raw and digest only come from the reader
        self,
        line: int,
        key: str | None,
        phase: str,
        error: str,
        values: Mapping[str, Any],
        column: str | None = None,
        raw: str = "",
        digest: int | None = None,
    ) -> None:
        assert self.journal is not None
        self.journal.reject(line, key, phase, error, digest=digest)
        if self.rejects is not None:
            self.rejects.write(line, phase, error, values, raw=raw)
        if self._findings is not None:
            self._findings.append({"line": line, "column": column, "phase": phase, "error": error})
        self.progress.add("rejected", reason=f"{phase}: {error}")
        log.info("line %s rejected (%s): %s", line, phase, error)

    def _set_fatal(self, exc: BaseException) -> None:
        if self._fatal is None:
            # The caller gets the exception and reports it once; a second line here would only repeat it.
            log.info("stopping the run: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            # Kept without its traceback, whose frames hold this Loader: the cycle would keep the journal
            # (and its run lock) open until a garbage collection, after run() has returned.
            self._fatal = exc.with_traceback(None)
        self._stop.set()

    # -- summary ---------------------------------------------------------------------------------------------
    def _summary(self, started: float) -> Summary:
        assert self.journal is not None
        counts = self.journal.counts()
        elapsed = max(self._clock() - started, 1e-9)
        stats = self.client.stats() if self.client is not None and not self.dry_run else {}
        stats = stats_delta(stats, self._stats_before) if stats else stats
        fatal = self._fatal
        in_doubt_lines = [line for line, _k, _e in self.journal.rows("in_doubt")]
        outputs = [w for w in (self.rejects, self.in_doubt) if w is not None]
        return Summary(
            entity=self.entity,
            mode=self.mode,
            dry_run=self.dry_run,
            read=counts["read"],
            done=counts["done"],
            rejected=counts["rejected"],
            in_doubt=counts["in_doubt"],
            pending=counts["pending"],
            already_present=counts["already_present"],
            skipped_from_journal=self._skipped,
            duration_s=round(elapsed, 3),
            # Rows this run settled; rows left pending by a stop were read, not loaded.
            records_per_s=round(
                (counts["done"] + counts["rejected"] + counts["in_doubt"] - self._skipped) / elapsed, 1
            ),
            client=client_numbers(stats) if stats else {},
            in_doubt_lines=in_doubt_lines,
            in_doubt_lines_truncated=len(in_doubt_lines) < counts["in_doubt"],
            in_doubt_file=str(self.in_doubt.path) if self.in_doubt and self.in_doubt.count else None,
            in_doubt_file_rows=self.in_doubt.count if self.in_doubt else 0,
            rejected_rows=self._findings,
            stale_files=[str(w.path) for w in outputs if w.kept_earlier],
            journal=None if self.journal.path == ":memory:" else self.journal.path,
            rejects=str(self.rejects.path) if self.rejects is not None and self.rejects.holds_rows else None,
            target=self.target.describe(),
            fatal=f"{type(fatal).__name__}: {fatal}" if fatal else None,
            interrupted=self._interrupted,
            source=self._source.accounting() if self._source is not None else {},
            batch_size=self.sizer.label,
            shard=self.shard.label if self.shard is not None else None,
            other_shards=self._other_shards,
            **self.counters.snapshot(),
        )

    def close(self) -> None:
        """Close the journal (the client belongs to the caller)."""
        if self.journal is not None and not isinstance(self._journal_arg, Journal):
            self.journal.close()
        self.journal = None


def _path_of(output: RejectsWriter | str | Path | None) -> str | Path | None:
    return output.path if isinstance(output, RejectsWriter) else output


def _client_attr(client: Any, name: str, holder: str) -> str:
    """The client's URL or org, for the journal's target (``client.url``, else its transport's or codec's)."""
    value = getattr(client, name, None) or getattr(getattr(client, holder, None), name, None)
    return str(value or "")
