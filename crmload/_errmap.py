"""The one boundary where foreign exceptions (requests, urllib3, http.client, socket, ssl, lxml, MSAL) are
mapped.

The question every mapping answers is the retry question: was the request sent? urllib3 raises
``NewConnectionError`` / ``ConnectTimeoutError`` only while opening the socket, so their presence anywhere in
the chain means "never sent". requests wraps them as ``ConnectionError(MaxRetryError(reason=...))``
and urllib3 wraps the socket's ``OSError`` with ``raise ... from``, so the classifier walks ``args``,
``reason``, ``__cause__`` and ``__context__`` to find the errno and the phase.
"""

from __future__ import annotations

import errno as errno_mod
import http.client
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
import urllib3.exceptions as u3
from lxml import etree

from crmload.errors import (
    ConfigError,
    ConnectError,
    CrmLoadError,
    PortExhaustedError,
    ProtocolError,
    ResponseLostError,
    TlsError,
    TokenError,
)

__all__ = [
    "FOREIGN_ERRORS",
    "PORT_ERRNOS",
    "classify",
    "map_token_errors",
    "map_transport_errors",
    "token_refusal",
]

#: Linux EADDRINUSE/EADDRNOTAVAIL (98/99), their macOS values (48/49), and Winsock's 10048/10049.
PORT_ERRNOS = frozenset({errno_mod.EADDRINUSE, errno_mod.EADDRNOTAVAIL, 98, 99, 48, 49, 10048, 10049})
#: Errnos that can only come from connect(): the request was never sent.
_CONNECT_ERRNOS = frozenset(
    {errno_mod.ECONNREFUSED, errno_mod.ENETUNREACH, errno_mod.EHOSTUNREACH, 10061, 10051, 10065}
)

#: What the boundary catches. Anything else (TypeError, KeyError, ...) is a bug and must stay visible.
FOREIGN_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    u3.HTTPError,
    http.client.HTTPException,
    OSError,
    etree.Error,
)

_CONNECT_MARKERS: tuple[type[BaseException], ...] = (
    u3.NewConnectionError,
    u3.ConnectTimeoutError,
    u3.ProxyError,
    requests.ConnectTimeout,
    requests.exceptions.ProxyError,
)
_AFTER_SEND_MARKERS: tuple[type[BaseException], ...] = (
    u3.ReadTimeoutError,
    u3.ProtocolError,
    u3.IncompleteRead,
    requests.ReadTimeout,
    requests.exceptions.ChunkedEncodingError,
    http.client.HTTPException,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)
_PROTOCOL_MARKERS: tuple[type[BaseException], ...] = (
    requests.exceptions.ContentDecodingError,
    requests.TooManyRedirects,
    requests.exceptions.InvalidHeader,
    u3.DecodeError,
    u3.HeaderParsingError,
    etree.Error,
)
_CONFIG_MARKERS: tuple[type[BaseException], ...] = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    u3.LocationValueError,
)

_SSL_ERRORS: tuple[type[BaseException], ...] = (ssl.SSLError, u3.SSLError, requests.exceptions.SSLError)

_USERINFO = re.compile(r"(//)[^/@\s]+@")
_MASKED_USERINFO = r"\1***@"


@contextmanager
def map_transport_errors(what: str = "request") -> Iterator[None]:
    """Turn any foreign exception raised inside the block into a crmload error, chained with ``from``.

    crmload errors pass through untouched. ``what`` names the exchange in the message (never a secret).
    """
    try:
        yield
    except CrmLoadError:
        raise
    except FOREIGN_ERRORS as exc:
        raise classify(exc, what) from exc


def classify(exc: BaseException, what: str = "request") -> CrmLoadError:
    """Return the crmload error for a foreign exception; its phase picks ConnectError or ResponseLostError."""
    chain = list(_walk(exc))
    code = _first_errno(chain)
    detail = _describe(chain)
    if code in PORT_ERRNOS:
        return PortExhaustedError(f"{what}: no free local port (errno {code}): {detail}", errno=code)
    if code in _CONNECT_ERRNOS:
        return ConnectError(f"{what}: connect failed: {detail}", errno=code)
    if _in_handshake(chain):
        return _handshake_failure(chain, what, detail, code)
    for kinds, label, make in _RULES:
        if _has(chain, kinds):
            return make(f"{what}: {label}: {detail}", code)
    # Anything else failed somewhere between send and receive; assume the worst: it may have been applied.
    return ResponseLostError(f"{what}: failed after sending: {detail}", errno=code)


#: Handshake failures that may pass on a new connection: the peer was slow or dropped us mid-handshake.
_TRANSIENT_IN_HANDSHAKE: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionResetError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


def _in_handshake(chain: list[BaseException]) -> bool:
    """True when the failure happened in the TLS handshake, which comes before a single request byte.

    urllib3 reports a handshake timeout as a ``ReadTimeoutError`` (an after-send marker), so the phase is
    read from where it was raised: a traceback through ``SSLSocket.do_handshake`` (or a certificate refusal,
    which only a handshake gives). An SSL error while reading the answer is after send: maybe applied.
    """
    for exc in chain:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "do_handshake":
                return True
            tb = tb.tb_next
    return False


def _handshake_failure(chain: list[BaseException], what: str, detail: str, code: int | None) -> CrmLoadError:
    if _has(chain, (ssl.SSLCertVerificationError,)):
        return TlsError(f"{what}: TLS certificate verification failed: {detail}", errno=code)
    if _has(chain, _TRANSIENT_IN_HANDSHAKE):
        # Never sent, and it may pass: retried like any connect failure.
        hint = " (is this an https:// URL for a server that speaks plain http?)"
        return ConnectError(f"{what}: TLS handshake did not complete{hint}: {detail}", errno=code)
    # A protocol mismatch or a TLS alert: the same on every attempt, so not retried.
    return TlsError(f"{what}: TLS handshake failed: {detail}", errno=code)


_Make = Callable[[str, "int | None"], CrmLoadError]

#: First match wins. Connect markers come before after-send ones: a reset while connecting was never sent.
_RULES: tuple[tuple[tuple[type[BaseException], ...], str, _Make], ...] = (
    (_CONFIG_MARKERS, "invalid URL", lambda m, c: ConfigError(m)),
    (_CONNECT_MARKERS, "connect failed", lambda m, c: ConnectError(m, errno=c)),
    (_AFTER_SEND_MARKERS, "sent, but the response was lost", lambda m, c: ResponseLostError(m, errno=c)),
    # Handshake failures were sorted out before these rules; an SSL error now broke an answer being read.
    (_SSL_ERRORS, "TLS failed after sending", lambda m, c: ResponseLostError(m, errno=c)),
    (_PROTOCOL_MARKERS, "malformed response", lambda m, c: ProtocolError(m)),
    ((requests.Timeout, TimeoutError), "timed out after sending", lambda m, c: ResponseLostError(m, errno=c)),
)


def _walk(exc: BaseException, limit: int = 32) -> Iterator[BaseException]:
    """Yield ``exc`` and every exception it wraps, breadth first, each once."""
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue and len(seen) < limit:
        cur = queue.pop(0)
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        nested: list[object] = [getattr(cur, "reason", None), cur.__cause__, cur.__context__, *cur.args]
        queue.extend(n for n in nested if isinstance(n, BaseException))


def _first_errno(chain: list[BaseException]) -> int | None:
    for exc in chain:
        if isinstance(exc, OSError):
            code = getattr(exc, "winerror", None) or exc.errno
            if isinstance(code, int):
                return code
    return None


def _has(chain: list[BaseException], kinds: tuple[type[BaseException], ...]) -> bool:
    return any(isinstance(exc, kinds) for exc in chain)


def _describe(chain: list[BaseException]) -> str:
    """Name the innermost cause; strip user:password@ from any URL the message quotes."""
    root = chain[-1]
    for exc in chain:
        if isinstance(exc, OSError) and exc.errno is not None:
            root = exc
            break
    text = _USERINFO.sub(_MASKED_USERINFO, str(root) or root.__class__.__name__)
    return f"{root.__class__.__name__}: {text}"


# -- token acquisition (MSAL) ---

#: What MSAL raises: network errors, and ValueError/RuntimeError for an authority it cannot use.
_TOKEN_FOREIGN: tuple[type[BaseException], ...] = (*FOREIGN_ERRORS, ValueError, RuntimeError)
_AADSTS = re.compile(r"AADSTS(\d+)")
#: (AADSTS codes, OAuth error codes, cause, wording): the first match names the cause of a refused token.
_TOKEN_CAUSES: tuple[tuple[frozenset[int], frozenset[str], str, str], ...] = (
    (
        frozenset({90002, 90023, 900023}),
        frozenset({"invalid_tenant"}),
        "tenant",
        "tenant {tenant} was not found",
    ),
    (
        frozenset({700016}),
        frozenset({"unauthorized_client"}),
        "client",
        "application {client_id} is not known",
    ),
    (
        frozenset({7000215, 7000222, 7000216, 700027}),
        frozenset({"invalid_client"}),
        "secret",
        "the client secret of application {client_id} was refused (wrong or expired)",
    ),
    (frozenset({500011, 1002012, 70011}), frozenset({"invalid_scope"}), "scope", "the scope was refused"),
    (frozenset(), frozenset({"temporarily_unavailable", "server_error"}), "authority", "it is unavailable"),
)


def token_refusal(
    result: dict[str, Any],
    *,
    client_id: str = "?",
    tenant: str = "?",
    authority: str = "the authority",
    mask: str | None = None,
) -> TokenError:
    """Return the ``TokenError`` for an OAuth error answer (``{"error": ..., "error_description": ...}``).

    The cause is read from the AADSTS code (Azure AD's own numbering) or else the OAuth error code. ``mask``
    (the secret) is blanked out of the server's words, in case an authority ever echoes it.
    """
    error = str(result.get("error") or "no_token")
    description = _first_sentence(str(result.get("error_description") or ""))
    codes = {c for c in result.get("error_codes") or () if isinstance(c, int)}
    codes |= {int(c) for c in _AADSTS.findall(description)}
    cause, text = "other", "no access token was issued"
    # The AADSTS code is the precise one (invalid_client covers a wrong secret and an unknown app alike).
    hits = [c for c in _TOKEN_CAUSES if codes & c[0]] or [c for c in _TOKEN_CAUSES if error in c[1]]
    if hits:
        cause, text = hits[0][2], hits[0][3].format(client_id=client_id, tenant=tenant)
    said = _masked(f"{error}: {description}" if description else error, mask)
    return TokenError(f"{authority} refused a token: {text} ({said})", cause=cause)


@contextmanager
def map_token_errors(
    *, client_id: str = "?", tenant: str = "?", authority: str = "the authority", mask: str | None = None
) -> Iterator[None]:
    """Turn what MSAL raises (network errors, and ``ValueError`` for an authority it cannot use) into a
    ``TokenError`` naming the cause, chained with ``from``."""
    try:
        yield
    except CrmLoadError:
        raise
    except _TOKEN_FOREIGN as exc:
        raise _token_failure(exc, client_id, tenant, authority, mask) from exc


def _token_failure(
    exc: BaseException, client_id: str, tenant: str, authority: str, mask: str | None
) -> TokenError:
    chain = list(_walk(exc))
    detail = _masked(_describe(chain), mask)
    if _has(chain, _SSL_ERRORS):
        text = f"TLS with the authority {authority} failed (is its CA in the bundle? --ca-bundle): {detail}"
        return TokenError(text, cause="tls")
    if _has(chain, (requests.HTTPError,)):
        return TokenError(f"the authority {authority} failed: {detail}", cause="authority")
    if _has(chain, (requests.RequestException, u3.HTTPError, OSError)):
        return TokenError(f"cannot reach the authority {authority}: {detail}", cause="unreachable")
    said = " ".join(str(e) for e in chain)
    codes = {int(c) for c in _AADSTS.findall(said)}
    if codes & {90002, 90023, 900023} or "invalid_tenant" in said:
        return TokenError(f"{authority}: tenant {tenant} was not found", cause="tenant")
    text = _masked(_first_sentence(str(exc) or type(exc).__name__), mask)
    return TokenError(
        f"{authority} is not a usable token authority for client {client_id}: {text}", cause="authority"
    )


def _first_sentence(text: str) -> str:
    """The server's first sentence: Azure AD appends trace ids and timestamps that only add noise."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    head, dot, _ = line.partition(". ")
    return (head + dot.strip()) if dot else line


def _masked(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text
