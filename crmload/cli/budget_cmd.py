"""``crmload budget``: this host's port budget, its live TIME_WAIT sockets, and the tuning to raise it."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any

EXAMPLES = """\
examples:
  python -m crmload budget
  python -m crmload budget --json
  python -m crmload budget --system Windows   # plan a Windows migration from another machine
"""


def register(subparsers: Any) -> None:
    """Add the ``budget`` subcommand to the CLI."""
    parser = subparsers.add_parser(
        "budget",
        help="show this host's ephemeral-port budget and how to raise it",
        description=(
            "Print how many new connections per second this host sustains before it runs out of ephemeral "
            "ports (ports / TIME_WAIT), how many sockets are in TIME_WAIT now, and the OS tuning that would "
            "raise the budget: sysctl on Linux, the 2009 registry values on Windows."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    parser.add_argument(
        "--system",
        choices=("Linux", "Windows", "Darwin"),
        default=None,
        help="describe another OS (its defaults; only this host's own settings are read)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; returns the exit code."""
    report = build_report(system=args.system)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    return 0


def build_report(*, system: str | None = None) -> dict[str, Any]:
    """Collect the figures ``budget`` prints, as plain JSON-able data."""
    from crmload.budget import (  # noqa: PLC0415 - keep `crmload --help` fast
        DEFAULT_PORT_BUDGET,
        PortBudget,
        count_time_wait,
        tuned_budget,
        tuning_advice,
        tuning_commands,
    )

    host = platform.system()
    target = system or host
    if target == host:
        budget = PortBudget.from_host(system=target)
        live = count_time_wait() if target == "Linux" else None
    else:
        # Another OS cannot be read from here: show its defaults (registry values unset).
        budget = PortBudget.from_host(system=target, read_registry=lambda _name: None)
        live = None

    def as_dict(b: PortBudget) -> dict[str, Any]:
        return {
            "ports": b.ports,
            "time_wait_s": b.time_wait_s,
            "per_second": round(b.per_second, 2),
            "source": b.source,
        }

    return {
        "system": target,
        "read_from_host": target == host,
        "budget": as_dict(budget),
        "time_wait_sockets": live,
        "crmload_default_budget": as_dict(DEFAULT_PORT_BUDGET),
        "tuning": {
            "commands": list(tuning_commands(system=target)),
            "budget": as_dict(tuned_budget(system=target)),
            "advice": tuning_advice(system=target),
        },
    }


def render(report: dict[str, Any]) -> str:
    """The human form of ``build_report()``."""
    b = report["budget"]
    d = report["crmload_default_budget"]
    live = report["time_wait_sockets"]
    live_text = f"{live} now (from /proc/net/tcp, /proc/net/tcp6)" if live is not None else "unknown here"
    heading = "Port budget of this host" if report["read_from_host"] else f"Port budget of {report['system']}"
    lines = [
        f"{heading} ({b['source']}):",
        f"  ephemeral ports     {b['ports']}",
        f"  TIME_WAIT           {b['time_wait_s']:g} s",
        f"  new connections/s   {b['per_second']:.2f}  (ports / TIME_WAIT)",
        f"  TIME_WAIT sockets   {live_text}",
        "",
        f"crmload's default call rate is {d['per_second']:.2f}/s, the 2009 Windows budget "
        f"({d['ports']} ports / {d['time_wait_s']:g} s):",
        "safe even with no connection reuse.",
        "Its connection guard keeps new sockets under the budget it is given, always.",
        "",
        report["tuning"]["advice"],
        "",
    ]
    return "\n".join(lines)
