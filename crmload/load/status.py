"""A run's status from its journals: ``crmload status JOURNAL...``, and what ``crmload.dask.load`` returns.

A journal is read-only here (``mode=ro``, no run lock), so a run may be watched while it goes on. Several
journals are merged into one summary, with the equation per journal and overall:
``done + rejected + in doubt == rows read`` (pending rows break it until ``--resume`` settles them).

For the shards of one run (``--shard i/N``, ``load/shard.py``; or the partitions of a Dask load) the merge
also checks what no single journal can:
- every journal is of the same run (target: URL, org, entity, mode, key; and the same input file);
- each shard 1..N is there exactly once;
- each shard read its input to the end (``read.source_rows`` in its meta, written when a run's reader got
  through the whole input), and for hash shards of one file the shards' reads add up to the file's records:
  every record is in exactly one shard's journal.
Anything that fails is a problem, listed; the exit code is then 1, as for a run that is not balanced.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crmload.errors import JournalError
from crmload.load.shard import parse_label

__all__ = ["COUNTS", "JournalStatus", "RunStatus", "merge", "read_status"]

COUNTS = ("read", "done", "rejected", "in_doubt", "pending", "already_present")
#: Meta keys a run writes after its reader got through the whole input (``Loader._finish``).
SOURCE_ROWS, OTHER_SHARDS = "read.source_rows", "read.other_shards"
_TARGET = ("url", "org", "entity", "mode", "key")


def equation(done: int, rejected: int, in_doubt: int, read: int, pending: int) -> str:
    """``done + rejected + in doubt == rows read`` with the numbers (and the pending rows when it fails)."""
    ok = done + rejected + in_doubt == read
    text = f"{done} done + {rejected} rejected + {in_doubt} in doubt {'==' if ok else '!='} {read} rows read"
    return text if ok else f"{text} ({pending} pending: run again with --resume)"


@dataclass(slots=True, kw_only=True)
class JournalStatus:
    """One journal: its run's target and shard, the input it read, and its rows per state."""

    path: str
    target: dict[str, str | None]
    shard: str | None = None
    source: str | None = None
    #: ``size:sha256`` of the input (``load/identity.py``); None when the rows did not come from a file.
    fingerprint: str | None = None
    read: int = 0
    done: int = 0
    rejected: int = 0
    in_doubt: int = 0
    pending: int = 0
    already_present: int = 0
    #: Records the input held (all shards'), once a run read it to the end; else None.
    source_rows: int | None = None
    other_shards: int | None = None
    #: What the run that made it reported (``crmload.dask``: duration, records/s, worker); empty from a file.
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        """True when every row read ended done, rejected or in doubt."""
        return self.done + self.rejected + self.in_doubt == self.read

    def equation(self) -> str:
        """This journal's equation, as the import summary prints it."""
        return equation(self.done, self.rejected, self.in_doubt, self.read, self.pending)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``balanced`` and ``equation``."""
        return {**asdict(self), "balanced": self.balanced, "equation": self.equation()}


def read_status(path: str | Path) -> JournalStatus:
    """Read one journal (read-only, no lock: its run may be going on). ``JournalError`` if it is none."""
    p = Path(path)
    if not p.is_file():
        raise JournalError(f"no journal at {p}")
    try:
        con = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            meta = dict(con.execute("SELECT k, v FROM meta").fetchall())
            by_state = dict(con.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
            present = con.execute("SELECT count(*) FROM rows WHERE outcome = 'already_present'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read journal {p}: {exc} (is it a crmload journal?)") from exc
    counts = {s: int(by_state.get(s, 0)) for s in ("done", "rejected", "in_doubt", "pending")}
    size, fingerprint = meta.get("source.size"), meta.get("source.fingerprint")
    return JournalStatus(
        path=str(p),
        target={k: _none(meta.get(f"target.{k}")) for k in _TARGET},
        shard=meta.get("target.shard"),
        source=meta.get("source.path"),
        fingerprint=f"{size}:{fingerprint}" if size and fingerprint else None,
        read=sum(counts.values()),
        already_present=int(present),
        source_rows=_int(meta.get(SOURCE_ROWS)),
        other_shards=_int(meta.get(OTHER_SHARDS)),
        done=counts["done"],
        rejected=counts["rejected"],
        in_doubt=counts["in_doubt"],
        pending=counts["pending"],
    )


def _none(value: str | None) -> str | None:
    return None if value in (None, "None") else value


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


@dataclass(slots=True, kw_only=True)
class RunStatus:
    """Several journals merged: per-journal parts, overall counts, the shards seen and the problems found."""

    parts: list[JournalStatus]
    totals: dict[str, int]
    #: ``{"kind", "count", "present", "missing", "repeated"}`` when the journals are shards; else None.
    shards: dict[str, Any] | None = None
    #: The input's records when every part read it to the end (summed over partitions), else None.
    source_rows: int | None = None
    problems: list[str] = field(default_factory=list)
    #: Parts still to read their input to the end (a run stopped early, or going on).
    unfinished: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """The overall equation holds."""
        t = self.totals
        return t["done"] + t["rejected"] + t["in_doubt"] == t["read"]

    @property
    def complete(self) -> bool:
        """Balanced, no problem, every shard there and every input read to the end."""
        return self.balanced and not self.problems and not self.unfinished

    @property
    def exit_code(self) -> int:
        """0 all done; 3 rejected or in-doubt rows; 1 not balanced, unfinished, or the journals disagree."""
        if not self.complete:
            return 1
        return 3 if self.totals["rejected"] or self.totals["in_doubt"] else 0

    def equation(self) -> str:
        """The overall equation."""
        t = self.totals
        return equation(t["done"], t["rejected"], t["in_doubt"], t["read"], t["pending"])

    def to_dict(self) -> dict[str, Any]:
        """What ``status --json`` prints (one object)."""
        return {
            "command": "status",
            "journals": [p.to_dict() for p in self.parts],
            **self.totals,
            "shards": self.shards,
            "source_rows": self.source_rows,
            "problems": self.problems,
            "unfinished": self.unfinished,
            "balanced": self.balanced,
            "complete": self.complete,
            "equation": self.equation(),
            "exit_code": self.exit_code,
        }

    def to_json(self) -> str:
        """One JSON object on one line."""
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    def render(self) -> str:
        """The human summary: one line per journal, then the overall equation and the checks."""
        first = self.parts[0].target if self.parts else {}
        key = f", key {first.get('key')}" if first.get("key") else ""
        n = len(self.parts)
        head = f"{first.get('entity')} ({first.get('mode')}) at {first.get('url')}{key}: {n} journal"
        lines = [head + ("" if n == 1 else "s")]
        width = max((len(p.shard or "") for p in self.parts), default=0)
        for p in self.parts:
            shard = (p.shard or "").ljust(width)
            name = "run" if not p.shard else shard if shard.startswith("partition") else f"shard {shard}"
            lines.append(f"  {name}: {p.equation()}  [{p.path}]")
        if n > 1 or (self.parts and self.parts[0].shard):
            lines.append(f"  overall: {self.equation()}")
        lines += [f"  {line}" for line in self._coverage()]
        lines += [f"  problem: {text}" for text in self.problems]
        return "\n".join(lines)

    def _coverage(self) -> list[str]:
        out = [f"not read to the end yet: {name} (stopped early, or going on)" for name in self.unfinished]
        if self.source_rows is not None and not self.unfinished and not self.problems:
            t = self.totals
            if self.shards and self.shards["kind"] == "hash":
                out.append(
                    f"the input's {self.source_rows} records: {t['read']} read, each in exactly one of the "
                    f"{self.shards['count']} shards' journals"
                )
            else:
                out.append(f"{t['read']} rows read of the {self.source_rows} the input held")
        return out


def merge(parts: Sequence[JournalStatus]) -> RunStatus:
    """Merge the journals of one run (its shards, or a single journal) into one status."""
    totals = {name: sum(int(getattr(p, name)) for p in parts) for name in COUNTS}
    status = RunStatus(parts=list(parts), totals=totals)
    if not parts:
        status.problems.append("no journal given")
        return status
    _check_same_run(parts, status.problems)
    status.shards = _check_shards(parts, status.problems)
    status.unfinished = [p.shard or p.path for p in parts if p.source_rows is None]
    status.source_rows = _source_rows(parts, status)
    return status


def _check_same_run(parts: Sequence[JournalStatus], problems: list[str]) -> None:
    first = parts[0]
    for p in parts[1:]:
        diff = [k for k in _TARGET if p.target.get(k) != first.target.get(k)]
        if diff:
            shown = ", ".join(f"{k} {first.target.get(k)!r} vs {p.target.get(k)!r}" for k in diff)
            problems.append(f"{p.path} is another run than {first.path} ({shown})")
        elif p.fingerprint != first.fingerprint:
            problems.append(f"{p.path} read another input than {first.path} ({p.source} vs {first.source})")


def _check_shards(parts: Sequence[JournalStatus], problems: list[str]) -> dict[str, Any] | None:
    labels = [parse_label(p.shard) for p in parts]
    if all(label is None for label in labels):
        if len(parts) > 1:
            problems.append("several journals, none of them a shard: each holds a whole run")
        return None
    kinds = {(label[0], label[2]) if label else None for label in labels}
    if len(kinds) != 1 or None in kinds:
        shown = ", ".join(sorted(p.shard or "unsharded" for p in parts))
        problems.append(f"the journals are not the shards of one run: {shown}")
        return None
    ((kind, count),) = kinds  # type: ignore[misc]
    seen = [label[1] for label in labels if label]
    present = sorted(set(seen))
    missing = [i for i in range(1, count + 1) if i not in present]
    repeated = sorted({i for i in seen if seen.count(i) > 1})
    prefix = "partition " if kind == "partition" else ""
    if missing:
        problems.append(f"shards missing: {', '.join(f'{prefix}{i}/{count}' for i in missing)}")
    if repeated:
        problems.append(f"shards given twice: {', '.join(f'{prefix}{i}/{count}' for i in repeated)}")
    return {"kind": kind, "count": count, "present": present, "missing": missing, "repeated": repeated}


def _source_rows(parts: Sequence[JournalStatus], status: RunStatus) -> int | None:
    """The input's records, checked against the reads; problems when they do not add up."""
    if status.unfinished or status.problems:
        return None
    known = [p.source_rows for p in parts if p.source_rows is not None]
    if status.shards is None or status.shards["kind"] == "partition":
        total = sum(known)
        short = [p for p in parts if p.read != p.source_rows]
        status.problems += [f"{p.shard or p.path}: {p.read} rows read of {p.source_rows} in" for p in short]
        return total
    if len(set(known)) != 1:
        shown = ", ".join(f"{p.shard}: {p.source_rows}" for p in parts)
        status.problems.append(f"the shards saw inputs of different lengths ({shown})")
        return None
    total = known[0]
    if status.totals["read"] != total:
        status.problems.append(
            f"the shards read {status.totals['read']} rows, the input holds {total}: were they run with the "
            "same flags (--key, --map)?"
        )
    return total


def part_from_mapping(data: Mapping[str, Any]) -> JournalStatus:
    """Rebuild a ``JournalStatus`` from its ``to_dict()`` (a Dask task's answer)."""
    names = set(JournalStatus.__dataclass_fields__)
    return JournalStatus(**{k: v for k, v in data.items() if k in names})
