"""Sharded runs: ``import --shard i/N`` takes the rows of shard ``i`` of ``N``, so N hosts split one file.

No coordinator: every shard reads the whole file and keeps the rows that belong to it, decided from the row
alone, the same way on every host.
- A keyed run (``--key COLUMN``) hashes the key's text as the mapper reads it (stripped, as in
  ``Mapper._identify``) with BLAKE2b (stable across processes and hosts, unlike ``hash()``). All rows
  sharing a key land in one shard, so "the first row with a key wins" still holds across the shards.
- An unkeyed run, a row whose key is empty, and a row the reader could not read go by line number.
Rows of other shards are not read: they never enter this shard's journal and are not in its equation
(``done + rejected + in doubt == rows read``). The run counts them as ``other_shards``, and after a whole
read the journal's meta records ``read.source_rows`` (every record of the file) and ``read.other_shards``,
so ``crmload status`` can check that the shards' reads add up to the file (``load/status.py``).

The journal's target carries the shard (``target.shard``): a resume with another shard, or none, is refused.
A Dask partition (``crmload.dask``) is a shard too, ``by="partition"``: it owns every row it is given.
Shards count from 1 (``1/4`` .. ``4/4``), as GNU ``split -n l/K/N`` does.

Example::

    >>> s = Shard.parse("2/4")
    >>> s.label, s.suffix
    ('2/4', '.shard-2-of-4')
    >>> sum(Shard(i, 4).owns(7, "A-17") for i in range(1, 5))
    1
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crmload.errors import ConfigError

__all__ = ["Shard", "parse_label", "shard_mismatch"]

_LABEL = re.compile(r"^(?:(partition) )?(\d+)/(\d+)$")
#: Most shards a run may name: far beyond any fleet, small enough to catch a typo such as 2/40000.
MAX_SHARDS = 4096


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (from 1); ``by`` is ``"hash"`` (import) or ``"partition"`` (Dask)."""

    index: int
    count: int
    by: str = "hash"

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ConfigError(f"shard count must be 1..{MAX_SHARDS}, not {self.count}")
        if not 1 <= self.index <= self.count:
            raise ConfigError(
                f"shard must be 1..{self.count} of {self.count} (shards count from 1), not {self.index}"
            )
        if self.by not in ("hash", "partition"):
            raise ConfigError(f"shard kind must be hash or partition, not {self.by!r}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> ``Shard(2, 4)``; ConfigError naming the expected form otherwise."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise ConfigError(f"expected i/N, e.g. 2/4 (shard 2 of 4, counted from 1), not {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def label(self) -> str:
        """What the journal and the summary say: ``2/4``, or ``partition 3/8``."""
        text = f"{self.index}/{self.count}"
        return text if self.by == "hash" else f"partition {text}"

    @property
    def suffix(self) -> str:
        """What default output names get, so shards on one host never share a file: ``.shard-2-of-4``."""
        return f".{'shard' if self.by == 'hash' else 'partition'}-{self.index}-of-{self.count}"

    def owns(self, line_no: int, key: str | None) -> bool:
        """True when the row at ``line_no`` with key text ``key`` (None: unkeyed) belongs to this shard."""
        if self.by == "partition" or self.count == 1:
            return True
        if key:
            digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            return int.from_bytes(digest, "big") % self.count == self.index - 1
        return line_no % self.count == self.index - 1

    def takes(self, line_no: int, values: Mapping[str, Any], key_column: str | None, readable: bool) -> bool:
        """``owns`` for a source row: its key read as the mapper reads it (stripped), unless unreadable."""
        key = None
        if key_column and readable:
            raw = values.get(key_column)
            key = None if raw is None else str(raw).strip()
        return self.owns(line_no, key)


def parse_label(label: str | None) -> tuple[str, int, int] | None:
    """``"2/4"`` -> ``("hash", 2, 4)``, ``"partition 3/8"`` -> ``("partition", 3, 8)``, else None."""
    m = _LABEL.match(label or "")
    if not m:
        return None
    return (m.group(1) or "hash", int(m.group(2)), int(m.group(3)))


def shard_mismatch(path: str, theirs: str | None, ours: str | None) -> str | None:
    """The refusal when a journal holds another shard than this run's (None when they agree)."""
    if theirs == ours:
        return None

    def name(label: str | None) -> str:
        return "an unsharded run" if label is None else f"shard {label}"

    return (
        f"journal {path} holds {name(theirs)}, and this run is {name(ours)}: a shard resumes only as itself; "
        "give the same --shard (or another --journal)"
    )
