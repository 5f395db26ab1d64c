"""Load a Dask bag or dataframe into CRM: each partition by a worker, with its own journal shard.

``load(collection, entity=..., key=..., client_options=...)`` turns every partition of the collection into
one Dask task. The task builds its own ``CrmClient(**client_options)`` on the worker (pass
``budget_store="redis://..."`` there, so all workers and hosts obey one call budget: ``crmload.budgets``)
and runs a ``Loader`` over the partition's rows with its own journal,
``JOURNAL_DIR/ENTITY.partition-i-of-N.crmload.sqlite`` (``Shard(i, N, by="partition")``: partition ``i``
counts from 1, Dask's from 0); it answers with that journal's status. ``load`` returns their merge
(``crmload.load.status.RunStatus``): the equation per partition and overall, and whether every partition
read all the rows it was given.

Rows are a partition's dicts (a bag of mappings) or its records (a dataframe: missing values become None,
NumPy and pandas scalars plain Python values). A nullable integer column wants pandas' ``Int64`` dtype (e.g.
``df.convert_dtypes()``): float64 holds 8 as 8.0, which an Integer attribute refuses. A row's "line" in the
journal and the rejects file is its position in the partition, from 1. Partitions must therefore come out
the same when computed again (as Parquet or a fixed sequence do) for a resume to continue them row by row;
keyed loads are idempotent anyway.

Dask retries a task whose worker died: the retry finds the journal this ``load`` call began (its run id is in
the journal's meta) and resumes it, so no row is sent twice in a way the journal cannot see. A second
``load`` into a journal directory that already holds the partitions is refused unless ``resume=True``.

Reading CSV: ``dask.dataframe.read_csv`` cuts files at byte offsets, which breaks records that hold newlines
inside quoted fields (dask issues #1284 and #8045). Sharded CSV runs use crmload's own reader:
``crmload import FILE.csv --shard i/N`` on each host, then ``crmload status``.

Needs the ``crmload[dask]`` extra (dask and distributed). ``client_options`` and ``map_spec`` travel to the
workers pickled, secrets included: give credentials through the workers' environment where you can.

Example::

    >>> import dask.bag as db                                                         # doctest: +SKIP
    >>> data = [{"accountnumber": f"A-{i}", "name": f"N {i}"} for i in range(1000)]
    >>> rows = db.from_sequence(data, npartitions=8)
    >>> status = load(rows, entity="account", key="accountnumber", client_options={
    ...     "url": "https://contoso.crm4.dynamics.com/", "rate": 200, "budget_store": "redis://cache:6379/0"})
    >>> status.complete, status.equation()
    (True, '1000 done + 0 rejected + 0 in doubt == 1000 rows read')
"""

from __future__ import annotations

import importlib
import math
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmload.errors import ConfigError
from crmload.load.status import RunStatus, merge, part_from_mapping

__all__ = ["load"]

_RUN_META = "dask.run"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    """What every partition's task needs; pickled to the workers."""

    entity: str
    key: str | None
    client_options: dict[str, Any]
    journal_dir: str
    count: int
    run_id: str
    mode: str = "create"
    map_spec: Any = None
    workers: int = 2
    batch_size: int | str = "auto"
    resume: bool = False
    preflight: bool = True


def load(
    collection: Any,
    *,
    entity: str,
    key: str | None = None,
    client_options: Mapping[str, Any],
    journal_dir: str | os.PathLike[str] | None = None,
    mode: str = "create",
    map_spec: Any = None,
    workers: int = 2,
    batch_size: int | str = "auto",
    resume: bool = False,
    preflight: bool = True,
    scheduler: Any = None,
) -> RunStatus:
    """Load every partition of a Dask bag or dataframe into ``entity``; return the merged status.

    Args:
        collection: a ``dask.bag.Bag`` of mappings or a ``dask.dataframe.DataFrame``.
        entity, key, mode, map_spec, workers, batch_size: as for ``Loader`` (``workers`` threads per task).
        client_options: keyword arguments of ``CrmClient`` (``url`` required; ``rate``, ``budget_store``...).
        journal_dir: where each partition's journal and rejects go (default ``./crmload-dask``); on several
            hosts give a shared directory, or collect the journals for ``crmload status`` afterwards.
        resume: continue the partitions of an earlier ``load`` into the same journals.
        preflight: each task checks the server and entity (WhoAmI, one read) before it journals anything.
        scheduler: passed to ``dask.compute`` (default: the active ``distributed.Client``, if any).

    Returns ``RunStatus``: ``complete`` is True when every partition's rows ended done, rejected or in doubt.
    """
    try:
        dask: Any = importlib.import_module("dask")  # the optional extra; untyped for mypy either way
    except ModuleNotFoundError as exc:
        raise ConfigError("crmload.dask needs dask: pip install 'crmload[dask]'") from exc
    if "url" not in client_options:
        raise ConfigError(
            "client_options needs the CRM url, e.g. {'url': 'https://contoso.crm4.dynamics.com/'}"
        )
    parts = collection.to_delayed()
    where = Path(journal_dir if journal_dir is not None else "crmload-dask").resolve()
    where.mkdir(parents=True, exist_ok=True)
    job = _Job(
        entity=entity.lower(),
        key=key,
        client_options=dict(client_options),
        journal_dir=str(where),
        count=len(parts),
        run_id=uuid.uuid4().hex,
        mode=mode,
        map_spec=map_spec,
        workers=workers,
        batch_size=batch_size,
        resume=resume,
        preflight=preflight,
    )
    task = dask.delayed(load_partition, pure=False)
    answers = dask.compute(*[task(part, i, job) for i, part in enumerate(parts, 1)], scheduler=scheduler)
    return merge([part_from_mapping(a) for a in answers])


def load_partition(rows: Any, index: int, job: _Job) -> dict[str, Any]:
    """One task: load partition ``index`` (from 1) of ``job.count``; answer its journal's status as a dict."""
    from crmload.client import CrmClient  # noqa: PLC0415 - runs on a worker
    from crmload.load import Loader, Mapper  # noqa: PLC0415
    from crmload.load.journal import Target, public_url  # noqa: PLC0415
    from crmload.load.shard import Shard  # noqa: PLC0415
    from crmload.load.status import read_status  # noqa: PLC0415

    shard = Shard(index, job.count, by="partition")
    base = Path(job.journal_dir) / f"{job.entity}{shard.suffix}"
    path = Path(f"{base}.crmload.sqlite")
    with CrmClient(**job.client_options) as client:
        if job.preflight:
            client.preflight(job.entity)
        mapper = Mapper(job.entity, spec=job.map_spec, key=job.key)
        target = Target(
            url=public_url(client.url),
            org=client.org or "",
            entity=job.entity,
            mode=job.mode,
            key=mapper.key,
            shard=shard.label,
        )
        journal, again = _open_journal(path, target, job, shard.label)
        try:
            loader = Loader(
                client,
                job.entity,
                mode=job.mode,
                mapper=mapper,
                workers=job.workers,
                journal=journal,
                rejects=f"{base}.rejects.csv",
                in_doubt=f"{base}.in-doubt.csv",
                resume=again,
                batch_size=job.batch_size,
                target=target,
                shard=shard,
            )
            summary = loader.run(records(rows, index))
            loader.close()
        finally:
            journal.close()
    part = read_status(path)
    part.run = {
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "resumed": again,
        "duration_s": summary.duration_s,
        "records_per_s": summary.records_per_s,
        "requests": summary.client.get("requests", 0),
        "retries": summary.client.get("retries", 0),
        "fatal": summary.fatal,
    }
    return part.to_dict()


def _open_journal(path: Path, target: Any, job: _Job, label: str) -> tuple[Any, bool]:
    """Open a partition's journal: new, this ``load``'s retry (resumed), or an earlier one's (``resume=``)."""
    from crmload.load.journal import Journal  # noqa: PLC0415

    prior = _run_of(path)
    if prior is not None and prior != job.run_id and not job.resume:
        raise ConfigError(
            f"journal {path} holds {label} of an earlier load: pass resume=True to continue it, or another "
            "journal_dir to load again"
        )
    again = prior is not None
    journal = Journal.open(path, target, None, resume=again)
    journal.write_meta([(_RUN_META, job.run_id)])
    return journal, again


def _run_of(path: Path) -> str | None:
    """The run id in a journal's meta ("" for a journal without one); None when there is no journal yet."""
    if not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            found = con.execute("SELECT v FROM meta WHERE k = ?", (_RUN_META,)).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return ""  # a file there that is not a readable journal: Journal.open says what is wrong
    return str(found[0]) if found else ""


def records(rows: Any, index: int = 1) -> Iterator[dict[str, Any]]:
    """A partition's rows as plain dicts: a pandas DataFrame's records, or a bag partition's mappings."""
    if hasattr(rows, "columns") and hasattr(rows, "to_dict"):
        frame = rows.astype(object).where(rows.notna(), None)
        for rec in frame.to_dict("records"):
            yield {str(k): _plain(v) for k, v in rec.items()}
        return
    for n, item in enumerate(_iterable(rows), 1):
        if not isinstance(item, Mapping):
            raise ConfigError(
                f"partition {index}, row {n}: crmload.dask loads mappings (dicts), not {type(item).__name__}"
            )
        yield {str(k): _plain(v) for k, v in item.items()}


def _iterable(rows: Any) -> Iterable[Any]:
    if isinstance(rows, Iterable):
        return rows
    raise ConfigError(f"a partition must be rows, not {type(rows).__name__}")


def _plain(value: Any) -> Any:
    """NumPy and pandas scalars as plain Python values; NaN as None (a missing value)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    to_datetime = getattr(value, "to_pydatetime", None)
    if callable(to_datetime):
        return to_datetime()
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return _plain(value.item())
    return value
