"""``load/shard.py``: which rows a shard owns, and ``load/status.py``'s merge of shards (no sockets)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from crmload.errors import ConfigError
from crmload.load.shard import Shard, parse_label, shard_mismatch
from crmload.load.status import JournalStatus, merge, part_from_mapping


@pytest.mark.parametrize("text", ["", "2", "2/", "/4", "a/b", "2/4/1", "-1/4", "2.0/4"])
def test_malformed_shards_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="expected i/N"):
        Shard.parse(text)


@pytest.mark.parametrize(("text", "match"), [("0/4", "count from 1"), ("5/4", "1..4"), ("1/0", "count must")])
def test_out_of_range_shards_are_refused(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Shard.parse(text)


def test_every_row_belongs_to_exactly_one_shard() -> None:
    shards = [Shard(i, 4) for i in range(1, 5)]
    owners: Counter[int] = Counter()
    for line in range(2, 4002):
        for key in (f"A-{line}", None, ""):
            hits = [s.index for s in shards if s.owns(line, key)]
            assert len(hits) == 1
            if key:
                owners[hits[0]] += 1
    assert set(owners) == {1, 2, 3, 4}
    assert min(owners.values()) > 4000 / 4 * 0.8  # spread, not piled on one shard


def test_a_key_decides_not_the_line() -> None:
    shard = Shard(2, 4)
    assert len({shard.owns(line, "K-17") for line in range(2, 200)}) == 1
    assert len({shard.owns(line, None) for line in range(2, 200)}) == 2


def test_takes_reads_the_key_as_the_mapper_does() -> None:
    s = Shard(3, 7)
    assert s.takes(9, {"k": "  A-1 "}, "k", True) == s.owns(9, "A-1")
    assert s.takes(9, {"k": "A-1"}, "k", False) == s.owns(9, None)  # unreadable: by line
    assert s.takes(9, {"k": "A-1"}, None, True) == s.owns(9, None)  # unkeyed: by line
    assert s.takes(9, {}, "k", True) == s.owns(9, None)  # empty key (the mapper rejects it): by line


def test_the_hash_is_the_same_in_every_process() -> None:
    """Hosts agree without talking: the shard of a key must not depend on PYTHONHASHSEED."""
    code = (
        "from crmload.load.shard import Shard; "
        "print([Shard(i, 5).owns(0, f'K{n}') for n in range(50) for i in (1, 2)])"
    )
    seen = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        seen.add(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    here = str([Shard(i, 5).owns(0, f"K{n}") for n in range(50) for i in (1, 2)])
    assert seen == {here + "\n"}


def test_labels_and_suffixes() -> None:
    assert Shard(2, 4).label == "2/4"
    assert Shard(3, 8, by="partition").label == "partition 3/8"
    assert Shard(3, 8, by="partition").suffix == ".partition-3-of-8"
    assert parse_label("2/4") == ("hash", 2, 4)
    assert parse_label("partition 3/8") == ("partition", 3, 8)
    assert parse_label(None) is None
    assert all(Shard(i, 8, by="partition").owns(n, None) for i in (1, 8) for n in range(20))
    assert shard_mismatch("j", "2/4", "2/4") is None
    assert "holds shard 2/4, and this run is an unsharded run" in str(shard_mismatch("j", "2/4", None))


def _part(shard: str | None, read: int, source_rows: int | None, **kw: object) -> JournalStatus:
    target = {"url": "http://crm", "org": "O", "entity": "account", "mode": "create", "key": "k"}
    return JournalStatus(
        path=f"j{shard}", target=target, shard=shard, read=read, done=read, source_rows=source_rows, **kw
    )  # type: ignore[arg-type]


def test_merge_partitions_sums_their_inputs() -> None:
    parts = [_part(f"partition {i}/3", 10 * i, 10 * i) for i in (1, 2, 3)]
    status = merge(parts)
    assert status.complete
    assert status.exit_code == 0
    assert status.source_rows == 60
    assert status.shards is not None
    assert status.shards["kind"] == "partition"
    short = merge([_part("partition 1/2", 9, 10), _part("partition 2/2", 10, 10)])
    assert short.problems == ["partition 1/2: 9 rows read of 10 in"]
    back = part_from_mapping({**parts[0].to_dict(), "unknown": 1})
    assert back == parts[0]


def test_merge_catches_shards_that_do_not_add_up() -> None:
    assert merge([_part("1/2", 5, 12), _part("2/2", 6, 12)]).problems[0].startswith("the shards read 11 rows")
    assert "different lengths" in merge([_part("1/2", 6, 12), _part("2/2", 6, 11)]).problems[0]
    mixed = merge([_part("1/2", 6, 12), _part(None, 6, 12)])
    assert mixed.problems == ["the journals are not the shards of one run: 1/2, unsharded"]
    two_runs = merge([_part(None, 6, 6), _part(None, 6, 6)])
    assert two_runs.problems == ["several journals, none of them a shard: each holds a whole run"]
    assert merge([]).problems == ["no journal given"]
