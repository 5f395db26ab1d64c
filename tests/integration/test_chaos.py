"""Chaos test for exactly-once (issue 14): 20 SIGKILLs of a keyed and of an unkeyed 20,000-row import.

The driver is ``benchmarks/chaos.py`` (also ``python -m benchmarks --chaos``, which writes its figures to
``benchmarks/results/chaos.json``). One mock CRM in this process answers 5 % busy (``Retry-After: 0``), resets
2 % of connections after committing and closes keep-alive every 50 responses. Each import is killed 20 times,
once the journal shows a seeded random number of done rows, and resumed after each kill; a last resume runs to
completion. Then every source row is matched (by its accountnumber) with the records in the mock's store.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.chaos import fault_plan, run_chaos
from crmload.mock import MockCrm

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

ROWS = 20_000
KILLS = 20
SEED = 14


@pytest.mark.slow
def test_twenty_sigkills_then_resume_keep_exactly_once(
    crm_factory: Callable[..., MockCrm], tmp_path: Path
) -> None:
    crm = crm_factory(org="Contoso", faults=fault_plan(SEED))
    keyed, unkeyed = run_chaos(crm, tmp_path, rows=ROWS, kills=KILLS, seed=SEED, workers=4)

    for phase in (keyed, unkeyed):
        assert phase["violations"] == [], phase["violations"]
        assert phase["kills_landed"] == KILLS  # every kill hit a running import
        final: dict[str, Any] = phase["final"]
        assert final["read"] == ROWS
        assert final["done"] + final["rejected"] + final["in_doubt"] == final["read"]
        assert (final["pending"], final["rejected"]) == (0, 0)
        assert phase["duplicates"] == 0
        # The faults really happened in this phase: the run went through them, not around them.
        faults = phase["mock_faults"]
        assert (
            min(faults.get("busy", 0), faults.get("reset_after_commit", 0), faults.get("close_every", 0)) > 0
        )
        for kill in phase["kills"]:
            c = kill["counts"]
            assert c["done"] + c["rejected"] + c["in_doubt"] + c["pending"] == c["read"]

    # Keyed: every row exactly once, under the id its key gives.
    assert keyed["final"]["done"] == keyed["records"] == ROWS
    assert keyed["rows_in_doubt"] == 0
    assert keyed["final"]["exit_code"] == 0

    # Unkeyed: no row sent twice; the records beyond the done rows are exactly the in-doubt rows that landed.
    assert unkeyed["records"] - unkeyed["final"]["done"] == unkeyed["in_doubt_landed"]
    assert unkeyed["in_doubt_landed"] <= unkeyed["rows_in_doubt"] == unkeyed["final"]["in_doubt"]
    # Each reset after commit on a Create landed a record whose answer was lost, so its row is in doubt.
    ops = unkeyed["mock_requests_by_op"]
    others = sum(n for op, n in ops.items() if op != "Create")  # e.g. a preflight WhoAmI, retried
    assert unkeyed["in_doubt_landed"] >= unkeyed["mock_faults"]["reset_after_commit"] - others
    assert unkeyed["final"]["exit_code"] == (3 if unkeyed["rows_in_doubt"] else 0)
