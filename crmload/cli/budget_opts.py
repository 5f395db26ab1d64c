"""``--budget-store``: where the call limiter keeps its rate and pause (issue 13), shared by the commands."""

from __future__ import annotations

import argparse
import os

from crmload.budgets import ENV_BUDGET_STORE, BudgetStore, open_store, redact_url
from crmload.errors import ConfigError

__all__ = ["add_arguments", "build_store"]


def _store_url(text: str) -> str:
    """argparse type: check the scheme now, so a typo is a usage error (exit 2) before anything runs."""
    value = text.strip()
    if (
        not value
        or value.lower() == "local"
        or value.lower().startswith(("redis://", "rediss://", "unix://"))
    ):
        return value
    # ArgumentTypeError's text is shown as is: argparse would otherwise print the value, password and all.
    raise argparse.ArgumentTypeError(
        f"--budget-store must be 'local' or redis://[:password@]host:port/db, got {redact_url(value)!r}"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--budget-store`` (default ``$CRMLOAD_BUDGET_STORE``, else this process only)."""
    p.add_argument(
        "--budget-store",
        metavar="URL",
        type=_store_url,
        default=os.environ.get(ENV_BUDGET_STORE) or None,
        help="share the call rate and Retry-After pauses with every process using the same CRM URL and user:"
        f" redis://host:6379/0 (needs crmload[redis]; default ${ENV_BUDGET_STORE}, else this process only)",
    )


def build_store(args: argparse.Namespace) -> BudgetStore | None:
    """The store ``--budget-store`` names, or None for the in-process default."""
    url = getattr(args, "budget_store", None)
    if not url:
        return None
    try:
        return open_store(url)
    except ImportError:
        from crmload.cli import UsageError  # noqa: PLC0415 - the package imports the commands

        raise UsageError(
            f"--budget-store {redact_url(url)} needs redis-py: pip install 'crmload[redis]'"
        ) from None
    except ConfigError as exc:
        from crmload.cli import UsageError  # noqa: PLC0415

        raise UsageError(str(exc)) from None
