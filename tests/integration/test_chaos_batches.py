"""SIGKILL mid-batch, twice, then ``--resume``, on the Organization service (issue 9, acceptance 3).

The driver is ``benchmarks/chaos.py`` (as in ``test_chaos.py``), here through the 2011 URL with a bearer token
and ExecuteMultiple batches of 50 rows (4 in flight, so each kill lands with whole batches sent and
unanswered; a fixed size keeps ~60 requests a phase, so a 10 % fault rate surely meets every phase; auto
sizing has tests of its own). The mock answers 10 %
busy (``Retry-After: 0``) and resets 10 % of connections after committing. Then every source row is matched
(by its accountnumber) with the records in the mock's store.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.chaos import run_chaos
from crmload.mock import FaultPlan, MockCrm

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

ROWS = 3_000
KILLS = 2
SEED = 9
TOKEN = "chaos-token"


def test_sigkill_mid_batch_twice_then_resume_keyed_once_unkeyed_in_doubt_exactly_the_lost_batches(
    crm_factory: Callable[..., MockCrm], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TOKEN", TOKEN)
    plan = FaultPlan(
        busy_rate=0.1, retry_after_s=0, reset_after_commit_rate=0.1, exec_ms_per_record=1, seed=SEED
    )
    crm = crm_factory(org="Contoso", tokens={TOKEN: "loader"})
    # No preflight: at 20 % of answers lost or busy, its short start-up budget (3 tries) would stop some runs,
    # rightly; this test is about the batches.
    extra = ("--token-env", "CRM_TOKEN", "--batch-size", "50", "--no-preflight")
    keyed, unkeyed = run_chaos(
        crm,
        tmp_path,
        rows=ROWS,
        kills=KILLS,
        seed=SEED,
        workers=4,
        url=crm.url2011,
        extra=extra,
        plan=plan,
        kill_share=0.6,
    )

    for phase in (keyed, unkeyed):
        assert phase["violations"] == [], phase["violations"]
        assert phase["kills_landed"] == KILLS
        final = phase["final"]
        assert (final["read"], final["pending"], final["rejected"]) == (ROWS, 0, 0)
        assert final["done"] + final["in_doubt"] == ROWS
        assert phase["duplicates"] == 0
        # The faults really happened, and the kills found batches in flight.
        assert min(phase["mock_faults"].get("busy", 0), phase["mock_faults"].get("reset_after_commit", 0)) > 0
        assert all(n > 0 for n in phase["in_flight_at_kills"]), phase["in_flight_at_kills"]
        assert phase["mock_requests_by_op"]["Create"] < ROWS / 10  # batches, not rows

    # Keyed: every row exactly once, under its key's id.
    assert keyed["final"]["done"] == keyed["records"] == ROWS
    assert keyed["rows_in_doubt"] == 0

    # Unkeyed: in doubt are exactly the rows of batches whose answer was lost (audited: on the wire or at a
    # kill); those lost on the wire had landed (reset after commit), and no row has two records.
    # Every reset after commit landed a whole batch whose answer was lost: its rows are in doubt and landed.
    # (Which run marked them varies: a resume re-marks earlier in-doubt rows, so count them by what landed.)
    ops = unkeyed["mock_requests_by_op"]
    others = sum(n for op, n in ops.items() if op != "Create")
    assert unkeyed["in_doubt_landed"] >= unkeyed["mock_faults"]["reset_after_commit"] - others > 0
    assert unkeyed["lost_on_wire_unlanded"] == 0
    assert unkeyed["records"] - unkeyed["final"]["done"] == unkeyed["in_doubt_landed"]
    assert unkeyed["final"]["exit_code"] == 3
