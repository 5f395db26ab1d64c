"""``--server-limits``: the service-protection limits the client keeps under (issue 10)."""

from __future__ import annotations

import argparse
import os

from crmload.errors import ConfigError
from crmload.server_limits import ServerLimits

__all__ = ["add_arguments", "identity_auths", "server_limits"]


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
    p.add_argument(
        "--identity",
        metavar="VAR",
        action="append",
        default=None,
        help="an identity of a pool (Organization service): the environment variable holding its bearer "
        "token. Repeat it: calls are spread across the identities, each with its own server budget, and "
        "one that is throttled pauses alone (replaces --token-env)",
    )


def server_limits(args: argparse.Namespace) -> ServerLimits | str | None:
    """What ``CrmClient(server_limits=...)`` gets: None (the endpoint's own), or the parsed limits/'off'."""
    text = getattr(args, "server_limits", None)
    if text is None:
        return None
    return ServerLimits.parse(text) or "off"


def identity_auths(args: argparse.Namespace) -> dict[str, object]:
    """``--identity VAR`` flags as {VAR: Bearer} (empty when none); a name given twice is a ConfigError."""
    names: list[str] = list(getattr(args, "identity", None) or [])
    if len(set(names)) != len(names):
        raise ConfigError("--identity: each identity once")
    from crmload.cli.auth_opts import _bearer  # noqa: PLC0415 - the auth flags live there

    return {name: _bearer(name, os.environ) for name in names}
