"""Authentication flags shared by the subcommands that talk to CRM: ``--auth``, ``--user``, ``--token-env``,
the client-credentials flags (``--tenant``, ``--client-id``, ``--authority``) and ``--ca-bundle``.

Secrets never come from argv, where every user of the machine can read them in ``/proc/<pid>/cmdline`` or
``ps``: the password comes from ``$CRMLOAD_PASSWORD`` or an interactive prompt, a bearer token from the
environment variable named by ``--token-env``, a client secret from ``$CRMLOAD_CLIENT_SECRET``.

Example:
    CRMLOAD_PASSWORD=... python -m crmload import accounts.csv --entity account --user 'CONTOSO\\alice'
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping

from crmload.auth import Basic, Bearer, ClientCredentials, Negotiate, Ntlm
from crmload.errors import ConfigError

__all__ = ["AUTH_SCHEMES", "CLIENT_SECRET_ENV", "PASSWORD_ENV", "add_arguments", "build_auth", "verify"]

#: The variable the password is read from; unset, the user is prompted (when stdin is a terminal).
PASSWORD_ENV = "CRMLOAD_PASSWORD"  # noqa: S105  (a variable name, not a password)
#: The variable the client secret of ``--auth client-credentials`` is read from (never a flag).
CLIENT_SECRET_ENV = "CRMLOAD_CLIENT_SECRET"  # noqa: S105  (a variable name, not a secret)
AUTH_SCHEMES = ("ntlm", "negotiate", "bearer", "client-credentials", "basic", "none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--auth``, ``--user`` and ``--token-env`` to ``parser``."""
    group = parser.add_argument_group(
        "authentication",
        f"The password comes from ${PASSWORD_ENV} or a prompt, never from the command line.",
    )
    group.add_argument(
        "--auth",
        choices=AUTH_SCHEMES,
        default=None,
        help="HTTP authentication (default: ntlm with --user, bearer with --token-env, client-credentials "
        "with --client-id, else none)",
    )
    group.add_argument(
        "--user", metavar="DOMAIN\\USER", help="the Windows account for ntlm, negotiate, basic"
    )
    group.add_argument(
        "--token-env",
        metavar="VAR",
        help="environment variable holding the bearer token; re-read before each call and after a 401",
    )
    azure = parser.add_argument_group(
        "client credentials (Azure AD / Entra ID app-only tokens; needs crmload[azure])",
        f"The client secret comes from ${CLIENT_SECRET_ENV}, never from the command line.",
    )
    azure.add_argument(
        "--tenant", metavar="T", help="directory (tenant) id or domain, e.g. contoso.onmicrosoft.com"
    )
    azure.add_argument("--client-id", metavar="C", help="application (client) id")
    azure.add_argument(
        "--authority",
        metavar="URL",
        help="token authority host (default https://login.microsoftonline.com; sovereign clouds, a mock)",
    )
    parser.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="PEM file of the CAs to trust for the CRM URL and the authority (default: the system's)",
    )


def build_auth(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] = getpass.getpass,
    interactive: bool | None = None,
) -> object | None:
    """Return the ``auth=`` object for ``CrmClient`` from the parsed flags, or None for no authentication.

    Raises:
        ConfigError: a missing user, password or token, or a flag that does not fit the scheme.
    """
    env = os.environ if environ is None else environ
    user: str | None = getattr(args, "user", None)
    token_env: str | None = getattr(args, "token_env", None)
    scheme: str | None = getattr(args, "auth", None)
    if scheme is None:
        client_id = getattr(args, "client_id", None)
        scheme = "ntlm" if user else "bearer" if token_env else "client-credentials" if client_id else "none"
    if scheme == "none":
        return None
    if scheme == "bearer":
        return _bearer(token_env, env)
    if scheme == "client-credentials":
        return _client_credentials(args, env)
    if not user:
        raise ConfigError(f"--auth {scheme} needs --user DOMAIN\\user")
    if ":" in user:
        # Someone tried "DOMAIN\\user:password". The value is not echoed: it may hold the password.
        raise ConfigError(
            f"--user takes DOMAIN\\user only; the password comes from ${PASSWORD_ENV} or a prompt"
        )
    password = _password(user, env, prompt, sys.stdin.isatty() if interactive is None else interactive)
    if scheme == "basic":
        return Basic(user, password)
    return Negotiate(user, password) if scheme == "negotiate" else Ntlm(user, password)


def _password(user: str, env: Mapping[str, str], prompt: Callable[[str], str], interactive: bool) -> str:
    password = env.get(PASSWORD_ENV)
    if password:
        return password
    if not interactive:
        raise ConfigError(f"no password for {user}: set ${PASSWORD_ENV}, or run in a terminal to be prompted")
    password = prompt(f"Password for {user}: ")
    if not password:
        raise ConfigError(f"no password given for {user}")
    return password


def _bearer(token_env: str | None, env: Mapping[str, str]) -> Bearer:
    if not token_env:
        raise ConfigError(
            "--auth bearer needs --token-env VAR (the token is never taken from the command line)"
        )
    if not env.get(token_env):
        raise ConfigError(f"--token-env: the environment variable {token_env} is not set or empty")

    def token() -> str:
        value = env.get(token_env)
        if not value:
            raise ConfigError(f"the environment variable {token_env} no longer holds a token")
        return value

    return Bearer(token)


def verify(args: argparse.Namespace) -> bool | str:
    """``verify=`` for ``CrmClient``: the ``--ca-bundle`` file, else True (the system's CAs)."""
    bundle: str | None = getattr(args, "ca_bundle", None)
    if bundle is None:
        return True
    if not os.path.isfile(bundle):
        raise ConfigError(f"--ca-bundle: no such file: {bundle}")
    return bundle


def _client_credentials(args: argparse.Namespace, env: Mapping[str, str]) -> ClientCredentials:
    tenant: str | None = getattr(args, "tenant", None)
    client_id: str | None = getattr(args, "client_id", None)
    if not tenant or not client_id:
        raise ConfigError("--auth client-credentials needs --tenant T and --client-id C")
    secret = env.get(CLIENT_SECRET_ENV)
    if not secret:
        raise ConfigError(
            f"no client secret for application {client_id}: set ${CLIENT_SECRET_ENV} "
            "(it is never taken from the command line)"
        )
    return ClientCredentials(
        tenant, client_id, secret, authority=getattr(args, "authority", None), verify=verify(args)
    )
