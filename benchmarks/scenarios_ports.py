"""Scenarios that need the port wall: a namespace with ~990 local ports and no TIME_WAIT reuse.

1. ``port_wall``: each contender loads 20,000 records (quick: 3,000) inside a fresh wall namespace.
5. ``broken_keepalive``: the mock closes every connection; crmload's new-connection rate stays under the
   budget while naive's climbs until the ports run out.
Both skip with a clear message when namespaces are not available (not root, no ``ip``).
"""

from __future__ import annotations

from typing import Any

from benchmarks import netns
from benchmarks.scenarios import Ctx, run_isolated, summarize

WALL_BUDGET = netns.WALL_PORTS / netns.TIME_WAIT_S


def _skip(ctx: Ctx) -> dict[str, Any] | None:
    if ctx.use_ns:
        return None
    ctx.log(f"  skipped: {ctx.ns_reason}")
    return {"skipped": True, "reason": ctx.ns_reason, "runs": [], "summary": []}


def _wall_run(
    ctx: Ctx, name: str, count: int, workers: int, mock_args: tuple[str, ...] = ()
) -> dict[str, Any]:
    series_every = max(count // 100, 10)
    extra = ["--series-every", str(series_every)]
    # crmload reads the namespace's own budget (PortBudget.from_host): 990 ports, 60 s TIME_WAIT.
    return run_isolated(ctx, name, count, workers, extra, mock_args=mock_args, sysctls=netns.WALL_SYSCTLS)


def port_wall(ctx: Ctx) -> dict[str, Any]:
    """Scenario 1: who gets through 20,000 creates with ~990 ports and 16.5 new connections/s."""
    skipped = _skip(ctx)
    if skipped:
        return skipped
    count = ctx.size(20000, 3000)
    workers = 4
    runs = []
    for rep in range(ctx.reps):
        for name in ("naive", "zeep", "crmload"):
            res = _wall_run(ctx, name, count, workers)
            res["rep"] = rep
            ctx.log(
                f"  wall {name:8s} ok={res['ok']} errors={res['errors']} "
                f"first_fail={res.get('first_error_call')} "
                f"sockets={res['server']['connections_accepted']} stored={res['stored']}/{count}"
            )
            runs.append(res)
    for r in runs:
        r["sockets_opened"] = r["server"]["connections_accepted"]
    summary = summarize(
        runs,
        ("ok", "errors", "first_error_call", "records_per_s", "sockets_opened", "stored"),
        ("contender",),
    )
    for row in summary:
        mine = [r for r in runs if r["contender"] == row["contender"]]
        row["all_stored_every_run"] = all(r["all_stored"] for r in mine)
        row["first_error"] = next((r["first_error"] for r in mine if r.get("first_error")), None)
        row["connects_attempted"] = max(r.get("connects_attempted") or 0 for r in mine)
    crm = next((r for r in summary if r["contender"] == "crmload"), {})
    goals = {"crmload_all_stored": bool(crm.get("all_stored_every_run")), "crmload_errors": crm.get("errors")}
    return {
        "count": count,
        "workers": workers,
        "ports": netns.WALL_PORTS,
        "time_wait_s": netns.TIME_WAIT_S,
        "budget_per_s": WALL_BUDGET,
        "runs": runs,
        "summary": summary,
        "goals": goals,
    }


def broken_keepalive(ctx: Ctx) -> dict[str, Any]:
    """Scenario 5: the mock answers ``Connection: close`` every time; compare new-connection rates."""
    skipped = _skip(ctx)
    if skipped:
        return skipped
    plan = {"crmload": ctx.size(300, 100), "naive": 3000}
    runs = []
    for rep in range(ctx.reps):
        for name, count in plan.items():
            res = _wall_run(ctx, name, count, 4, mock_args=("--close-every", "1"))
            accepted = res["server"]["connections_accepted"]
            wall = res.get("wall_s") or res["proc_wall_s"]
            res.update(
                rep=rep,
                new_conn_per_s=accepted / wall if wall else None,
                sustained_conn_per_s=sustained_rate(res.get("series") or []),
                sockets_opened=accepted,
            )
            ctx.log(
                f"  close-every-1 {name:8s} ok={res['ok']} conns={accepted} "
                f"rate={res['new_conn_per_s']:.1f}/s (budget {WALL_BUDGET:.1f}/s)"
            )
            runs.append(res)
    summary = summarize(
        runs,
        ("ok", "errors", "first_error_call", "new_conn_per_s", "sustained_conn_per_s", "sockets_opened"),
        ("contender",),
    )
    crm = next((r for r in summary if r["contender"] == "crmload"), {})
    rate = crm.get("sustained_conn_per_s")
    goals = {"budget_per_s": WALL_BUDGET, "crmload_under_budget": rate is not None and rate <= WALL_BUDGET}
    return {"plan": plan, "budget_per_s": WALL_BUDGET, "runs": runs, "summary": summary, "goals": goals}


def sustained_rate(series: list[list[float]]) -> float | None:
    """New connections per second after the start-up burst: the slope over the last 80 % of the run.

    ``series`` rows are ``(records done, connects attempted, seconds)`` as the contender sampled them.
    """
    if len(series) < 3:
        return None
    tail = series[len(series) // 5 :]
    (_, c0, t0), (_, c1, t1) = tail[0], tail[-1]
    return (c1 - c0) / (t1 - t0) if t1 > t0 else None
