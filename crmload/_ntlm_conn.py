"""The per-session NTLM/Negotiate connection state machine behind ``crmload.auth.Ntlm`` (private).

``_ConnectionAuth`` remembers which socket a pinned session authenticated and runs the handshake on a new one;
``_Gate`` shares "credentials proven / refused" across all of one ``Ntlm``'s sessions. The behaviour is
described in the ``crmload.auth`` module docstring.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import requests
import spnego
from cryptography import x509  # pyspnego's own dependency; hashes the server certificate for channel bindings
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from requests.auth import AuthBase
from requests.hooks import default_hooks
from urllib3.util.wait import wait_for_read

from crmload.errors import AuthenticationError

if TYPE_CHECKING:
    from crmload.auth import Ntlm

# The logger keeps the name it had before this module was split out of crmload.auth, so applications that
# configure "crmload.auth" still see these lines.
log = logging.getLogger("crmload.auth")


def _drain(resp: requests.Response) -> None:
    """Read the rest of a response so its connection goes back to the (one-connection) pool."""
    _ = resp.content
    resp.raw.release_conn()


def _sock_of(resp: requests.Response) -> Any:
    conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    return getattr(conn, "sock", None)


def _refuse_401(resp: requests.Response, what: str) -> NoReturn:
    _drain(resp)
    raise AuthenticationError(f"the server refused the {what} (HTTP 401)")


class _Gate:
    """Whether the credentials are known good, known bad, or untried; shared by all of an auth's sessions.

    Until one handshake has succeeded, handshakes run one at a time, so wrong credentials cost one attempt
    (not one per worker) and every other worker then fails fast.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.proven = False
        self.refused: str | None = None

    def check(self) -> None:
        if self.refused is not None:
            raise AuthenticationError(self.refused)

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        self.check()
        if self.proven:
            yield
            return
        with self._lock:
            self.check()
            yield

    def refuse(self, message: str) -> NoReturn:
        self.refused = message
        raise AuthenticationError(message)


class _ConnectionAuth(AuthBase):
    """One session's NTLM state: the socket it authenticated, and the handshake that is in flight.

    A pinned session is used by one thread only, so this needs no lock. ``session`` is None when the ``Ntlm``
    object is used as a plain ``requests`` auth (no pinning seam): it then only reacts to 401s.
    """

    def __init__(self, owner: Ntlm, session: requests.Session | None) -> None:
        self._owner = owner
        self._session = session
        self._sock: weakref.ref[Any] | None = None  # the socket this session authenticated
        self._pending: tuple[Any, Any] | None = (
            None  # (socket of the challenge, context) for a type-3 in flight
        )
        self._per_request = False  # the server forgets auth after each request (authPersistSingleRequest)
        self._scheme = owner._schemes[0]

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        self._owner._gate.check()
        self._pending = None
        if self._session is not None and self._owner._gate.proven and not self._authenticated():
            self._start(r)
        r.register_hook("response", self._on_response)  # type: ignore[no-untyped-call,unused-ignore]
        return r

    def _authenticated(self) -> bool:
        """True when the socket we authenticated is still open, so the pool will hand it out again."""
        sock = self._sock() if self._sock is not None else None
        if sock is None or self._per_request:
            return False
        try:
            return sock.fileno() != -1 and not wait_for_read(sock, timeout=0.0)
        except (OSError, ValueError):
            return False

    def _start(self, r: requests.PreparedRequest) -> None:
        """Proactive handshake: body-less type-1 leg now; the type-3 token rides on the real request."""
        assert self._session is not None
        session = self._session
        adapter = session.get_adapter(r.url or "")
        context = self._owner._context(r.url or "")
        self._owner._count("handshake_attempts")
        leg = self._leg(r, context.step(), body=b"")
        resp = adapter.send(
            leg,
            stream=True,
            timeout=self._owner.handshake_timeout,
            verify=True if session.verify is None else session.verify,
            cert=session.cert,
            proxies=session.proxies,
        )
        challenge, sock = self._challenge(resp), _sock_of(resp)
        _drain(resp)
        if challenge is None:
            return  # no challenge: let the real request go and react to what the server says
        r.headers["Authorization"] = f"{self._scheme} {self._token(context, challenge, sock)}"
        self._pending = (sock, context)

    def _on_response(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        pending, self._pending = self._pending, None
        if r.status_code != 401:
            self._remember(r, handshake=pending is not None)
            return r
        if self._challenge_offer(r) is None:
            _refuse_401(r, f"request: the server offers none of {', '.join(self._owner._schemes)}")
        sock = _sock_of(r)
        if pending is None and self._sock is not None and sock is not None and self._sock() is sock:
            self._per_request = True  # auth dropped on a live connection: handshake on every request
            log.info("the server forgets NTLM auth after each request; authenticating every request")
        self._owner._count("handshakes_after_401")
        _drain(r)
        return self._handshake_and_resend(r, kwargs, used=1 if pending is not None else 0)

    def _handshake_and_resend(
        self, r: requests.Response, kwargs: dict[str, Any], used: int
    ) -> requests.Response:
        """Reactive handshake on the connection the pool hands out; re-send the request with the type-3."""
        owner = self._owner
        with owner._gate.attempt():
            for _ in range(used, owner.max_handshakes):
                owner._count("handshake_attempts")
                context = owner._context(r.request.url or "")
                first = r.connection.send(
                    self._leg(r.request, context.step(), body=b""), **{**kwargs, "stream": True}
                )
                challenge, sock1 = self._challenge(first), _sock_of(first)
                _drain(first)
                if challenge is None:
                    owner._gate.refuse(f"the server refused NTLM for {owner.user} (HTTP {first.status_code})")
                final = self._leg(r.request, None, body=None)
                final.headers["Authorization"] = f"{self._scheme} {self._token(context, challenge, sock1)}"
                resp: requests.Response = r.connection.send(final, **{**kwargs, "stream": True})
                resp.history[:0] = [r, first]
                if resp.status_code != 401:
                    self._remember(resp, handshake=True)
                    return resp
                sock2 = _sock_of(resp)
                _drain(resp)
                if sock1 is not None and sock2 is sock1:
                    owner._gate.refuse(
                        f"the server refused the NTLM credentials of {owner.user} "
                        "(HTTP 401 after a full handshake)"
                    )
                log.debug("NTLM handshake split across two connections; starting again")
        raise AuthenticationError(
            f"NTLM handshake for {owner.user} did not complete in {owner.max_handshakes} attempts "
            "(the server kept closing the connection mid-handshake)"
        )

    def _remember(self, r: requests.Response, *, handshake: bool) -> None:
        sock = _sock_of(r)
        self._sock = weakref.ref(sock) if sock is not None else None
        if handshake:
            self._owner._count("handshakes")
            self._owner._gate.proven = True

    def _leg(self, request: requests.PreparedRequest, token: bytes | None, *, body: bytes | None) -> Any:
        leg = request.copy()
        leg.hooks = default_hooks()
        if token is not None:
            leg.headers["Authorization"] = f"{self._scheme} {base64.b64encode(token).decode('ascii')}"
        if body is not None:
            leg.body = body
            leg.headers["Content-Length"] = str(len(body))
        return leg

    def _challenge_offer(self, r: requests.Response) -> str | None:
        offered = [v.strip().split(" ", 1)[0] for v in r.headers.get("WWW-Authenticate", "").split(",")]
        for scheme in self._owner._schemes:
            if any(o.lower() == scheme.lower() for o in offered):
                self._scheme = scheme
                return scheme
        return None

    def _challenge(self, r: requests.Response) -> bytes | None:
        if r.status_code != 401:
            return None
        for value in r.headers.get("WWW-Authenticate", "").split(","):
            scheme, _, token = value.strip().partition(" ")
            if token and scheme.lower() == self._scheme.lower():
                try:
                    return base64.b64decode(token.strip())
                except ValueError:
                    return None
        return None

    def _token(self, context: Any, challenge: bytes, sock: Any) -> str:
        bindings = _channel_bindings(sock)
        if bindings is not None:
            context.channel_bindings = bindings
        try:
            token = context.step(challenge)
        except spnego.exceptions.SpnegoError as exc:
            # pyspnego's messages never contain the password; the chained cause stays for debugging.
            raise AuthenticationError(f"NTLM challenge from the server could not be answered: {exc}") from exc
        return base64.b64encode(token or b"").decode("ascii")


def _channel_bindings(sock: Any) -> Any:
    """TLS channel bindings (tls-server-end-point, RFC 5929) for Extended Protection; None over plain HTTP."""
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    der = getpeercert(binary_form=True)
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der)
    return spnego.channel_bindings.GssChannelBindings(
        application_data=b"tls-server-end-point:" + digest.finalize()
    )
