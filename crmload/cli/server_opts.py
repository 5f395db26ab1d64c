"""``--server-limits``: the service-protection limits the client keeps under (issue 10)."""

from __future__ import annotations

import argparse

from crmload.errors import ConfigError
from crmload.server_limits import ServerLimits

__all__ = ["add_arguments", "server_limits"]


def _limits(text: str) -> str:
    """argparse type: check the value now, so a typo is a usage error (exit 2) before anything runs."""
    try:
        ServerLimits.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--server-limits R/E/C[/WINDOW]|default|off``."""
    p.add_argument(
        "--server-limits",
        metavar="R/E/C[/W]|off",
        type=_limits,
        default=None,
        help="the server's service-protection limits per user: requests / execution seconds / concurrent "
        "requests per window (default on the Organization service: 6000/1200/52/300; 'off': none). Calls "
        "stay under them; a throttle fault that names a lower limit lowers it",
    )


def server_limits(args: argparse.Namespace) -> ServerLimits | str | None:
    """What ``CrmClient(server_limits=...)`` gets: None (the endpoint's own), or the parsed limits/'off'."""
    text = getattr(args, "server_limits", None)
    if text is None:
        return None
    return ServerLimits.parse(text) or "off"
