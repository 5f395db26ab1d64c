"""The mock's IIS-like Integrated Windows authentication: a real NTLM (and SPNEGO-wrapped NTLM) acceptor.

NTLM authenticates the TCP *connection*, not the request. The server keeps the handshake state on the
per-connection object the mock hands in (``state.auth``), so a new connection must authenticate again, and an
authenticated connection needs no ``Authorization`` header on later requests (IIS's default
``authPersistSingleRequest=false``). ``persist_single_request=True`` resets the state after every request.

How the acceptor finds credentials: pyspnego's NTLM acceptor (0.12) has no per-context credential option;
it reads the path of a users file from the ``NTLM_USER_FILE`` environment variable, both when a context is
created and when the type-3 message is checked. So each authenticator writes its users once into a private
temp file (mode 0600, smbpasswd format holding only NT hashes, never a clear password; deleted on
``close()`` or garbage collection), and every pyspnego call runs under one process-wide lock that points
``NTLM_USER_FILE`` at that file and restores the previous value afterwards. Handshakes are rare (once per
connection) and a step costs microseconds, so the lock is no bottleneck, and two authenticators in one
process never see each other's users.

Example:
    >>> auth = NtlmAuthenticator({"CONTOSO\\\\alice": "secret"})
    >>> auth.stats()["handshakes"]
    0
    >>> auth.close()
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import tempfile
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import spnego
from spnego._ntlm_raw.crypto import ntowfv1  # NT hash: the users file then never holds a clear password

__all__ = ["AuthResult", "NtlmAuthenticator"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: pyspnego reads its acceptor's users file from this environment variable.
_ENV = "NTLM_USER_FILE"
#: Serialises every pyspnego acceptor call that may read ``NTLM_USER_FILE``, process-wide.
_ENV_LOCK = threading.Lock()
_NTLM_SIGNATURE = b"NTLMSSP\x00"
_SPNEGO_INIT = 0x60  # ASN.1 [APPLICATION 0]: the first token of a SPNEGO exchange
_OFFER = [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")]


@dataclass
class AuthResult:
    """What the server does with one request: process it (``ok``), or answer ``status`` with ``headers``."""

    ok: bool
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


@dataclass
class _ConnAuth:
    """Per-connection auth state stored on ``state.auth``: a handshake in progress, or the user it proved."""

    scheme: str
    context: Any = None
    user: str | None = None


def _split_user(name: str) -> tuple[str, str]:
    domain, sep, user = name.partition("\\")
    return (domain, user) if sep else ("", name)


def _users_file_line(name: str, password: str) -> str:
    if any(ch in name for ch in ":\r\n") or not name.strip():
        raise ValueError(f"invalid user name for the mock's NTLM acceptor: {name!r}")
    nt_hash = ntowfv1(password).hex().upper()
    # smbpasswd format: USERNAME:UID:LM_HASH:NT_HASH:FLAGS:LCT. An empty LM hash disables LM responses.
    return f"{name}:0:{'0' * 32}:{nt_hash}:[U]:LCT-00000000\n"


def _write_users_file(users: Mapping[str, str]) -> str:
    fd, path = tempfile.mkstemp(prefix="crmload-ntlm-", suffix=".users")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(_users_file_line(name, pw) for name, pw in users.items())
    except BaseException:
        os.unlink(path)
        raise
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class NtlmAuthenticator:
    """Connection-bound NTLM/Negotiate authentication for the mock CRM server, checked with pyspnego.

    Args:
        users: ``{"DOMAIN\\\\user": password}``; user and domain match case-insensitively, as on Windows.
        persist_single_request: like IIS ``authPersistSingleRequest=true``: every request re-authenticates.
    """

    def __init__(self, users: Mapping[str, str], *, persist_single_request: bool = False) -> None:
        if not users:
            raise ValueError("NtlmAuthenticator needs at least one user")
        self.persist_single_request = persist_single_request
        self._names = {name.lower(): name for name in users}
        self._path = _write_users_file(users)
        self._finalizer = weakref.finalize(self, _remove, self._path)
        self._lock = threading.Lock()
        self._stats = {
            "handshakes": 0,
            "handshake_failures": 0,
            "challenges": 0,
            "anonymous": 0,
            "authenticated_requests": 0,
        }

    def __repr__(self) -> str:
        return f"NtlmAuthenticator(users={sorted(self._names.values())!r}, password=***)"

    def close(self) -> None:
        """Delete the private users file. Later handshakes fail; already authenticated connections stay so."""
        self._finalizer()

    def stats(self) -> dict[str, int]:
        """Counters: completed ``handshakes``, ``handshake_failures``, ``challenges`` sent (one per
        handshake attempt), ``anonymous`` requests answered 401, ``authenticated_requests`` let through."""
        with self._lock:
            return dict(self._stats)

    def reset(self) -> None:
        """Zero the counters (the mock's ``reset()`` calls this); connections keep their auth."""
        with self._lock:
            for key in self._stats:
                self._stats[key] = 0

    def check(self, state: Any, headers: Mapping[str, str]) -> AuthResult:
        """Decide one request on one connection; ``state.auth`` carries the handshake between requests."""
        current = state.auth
        header = headers.get("Authorization")
        if isinstance(current, _ConnAuth) and current.user is not None and not header:
            return self._pass(state)
        if not header:
            self._count("anonymous")
            return AuthResult(ok=False, status=401, headers=list(_OFFER))
        scheme, _, b64 = header.strip().partition(" ")
        scheme = {"ntlm": "NTLM", "negotiate": "Negotiate"}.get(scheme.lower(), "")
        try:
            token = base64.b64decode(b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            token = b""
        if not scheme or not token:
            return self._fail(state, "malformed Authorization header")
        if token.startswith(_NTLM_SIGNATURE + b"\x01") or token[0] == _SPNEGO_INIT:
            return self._challenge(state, scheme, token)
        if not isinstance(current, _ConnAuth) or current.context is None or current.user is not None:
            return self._fail(state, "authenticate token on a connection without a handshake in progress")
        return self._authenticate(state, current, token)

    def _pass(self, state: Any) -> AuthResult:
        self._count("authenticated_requests")
        if self.persist_single_request:
            state.auth = None
        return AuthResult(ok=True)

    def _challenge(self, state: Any, scheme: str, token: bytes) -> AuthResult:
        protocol = "ntlm" if token.startswith(_NTLM_SIGNATURE) else "negotiate"
        try:
            context = self._with_users(lambda: spnego.server(protocol=protocol))
            out = self._with_users(lambda: context.step(token))
        except spnego.exceptions.SpnegoError as exc:
            return self._fail(state, f"negotiate message refused: {exc}")
        state.auth = _ConnAuth(scheme=scheme, context=context)
        self._count("challenges")
        value = f"{scheme} {base64.b64encode(out or b'').decode('ascii')}"
        return AuthResult(ok=False, status=401, headers=[("WWW-Authenticate", value)])

    def _authenticate(self, state: Any, current: _ConnAuth, token: bytes) -> AuthResult:
        context = current.context
        try:
            out = self._with_users(lambda: context.step(token))
        except spnego.exceptions.SpnegoError as exc:
            return self._fail(state, f"logon denied: {exc}")
        if not context.complete:
            return self._fail(state, "handshake did not complete")
        principal = str(context.client_principal or "")
        domain, user = _split_user(principal)
        canonical = self._names.get(f"{domain}\\{user}".lower() if domain else user.lower(), principal)
        state.auth = _ConnAuth(scheme=current.scheme, user=canonical)
        self._count("handshakes")
        log.debug(
            "connection %s authenticated as %s (%s)", getattr(state, "id", "?"), canonical, current.scheme
        )
        result = self._pass(state)
        if out:  # SPNEGO's final mechListMIC token, as IIS sends it on the 200
            result.headers.append(("WWW-Authenticate", f"{current.scheme} {base64.b64encode(out).decode()}"))
        return result

    def _fail(self, state: Any, why: str) -> AuthResult:
        state.auth = None
        self._count("handshake_failures")
        log.debug("connection %s: authentication failed: %s", getattr(state, "id", "?"), why)
        return AuthResult(ok=False, status=401, headers=list(_OFFER))

    def _with_users(self, call: Callable[[], _T]) -> _T:
        """Run one pyspnego acceptor call with ``NTLM_USER_FILE`` pointing at this authenticator's users."""
        with _ENV_LOCK:
            previous = os.environ.get(_ENV)
            os.environ[_ENV] = self._path
            try:
                return call()
            finally:
                if previous is None:
                    del os.environ[_ENV]
                else:
                    os.environ[_ENV] = previous

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1
