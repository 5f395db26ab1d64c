"""HTTP authentication for the transport: NTLM and Negotiate on pinned connections, Bearer, Basic.

NTLM authenticates the TCP *connection*, not the request (IIS Integrated Windows authentication). So
an ``Ntlm`` object asks the transport for pinned connections (``pins_connection = True``: one
``requests.Session`` with a one-connection pool per worker thread) and installs, per session, a small state
machine that knows which socket it authenticated:

* a request on the authenticated, still-open socket carries no ``Authorization`` header: one round trip;
* on a new socket (first use, ``Connection: close``, an idle close by the server) it first sends a body-less
  ``POST`` with the type-1 token, reads the challenge, and puts the type-3 token on the real request, so a
  large body goes up once, not three times as with ``requests_ntlm`` (which re-sends it on every leg);
* a 401 in the middle of a keep-alive stream means the server dropped the connection's auth: it
  re-authenticates on the connection the pool hands out (a new one passes the transport's connect guard) and
  re-sends once;
* a refusal (401 to a type-3 on the same socket) marks the credentials refused for every worker: the first
  handshake is serialised until the credentials are proven, so a wrong password costs one attempt, and later
  calls raise ``AuthenticationError`` without touching the network.

Secrets are held in a ``Secret`` whose ``repr``/``str`` is ``***``; no message, log line or repr shows them.

Example:
    >>> Ntlm("CONTOSO\\\\alice", "pw")
    Ntlm(user='CONTOSO\\\\alice', password=***)
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
import spnego
from cryptography import x509  # pyspnego's own dependency; hashes the server certificate for channel bindings
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from requests.auth import AuthBase
from requests.hooks import default_hooks
from urllib3.util.wait import wait_for_read

from crmload.errors import AuthenticationError, ConfigError

__all__ = ["Basic", "Bearer", "Negotiate", "Ntlm", "Secret"]

log = logging.getLogger(__name__)

_MASK = "***"
#: The body-less first leg's timeouts (connect, read); it carries no work, so it answers at once.
DEFAULT_HANDSHAKE_TIMEOUT = (10.0, 60.0)


class Secret:
    """A password or token that never shows itself in ``repr``, ``str``, f-strings, logs or pickles."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise ConfigError("a secret must be a string")
        self._value = value

    def reveal(self) -> str:
        """Return the clear value; call only where it goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return _MASK

    def __reduce__(self) -> NoReturn:
        raise TypeError("crmload secrets cannot be pickled")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def _secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


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


class Basic(AuthBase):
    """HTTP Basic authentication, for proxies and tests; the password is held as a :class:`Secret`.

    Example:
        >>> Basic("alice", "pw")
        Basic(user='alice', password=***)
    """

    def __init__(self, user: str, password: str | Secret) -> None:
        self.user = user
        self._password = _secret(password)

    def __repr__(self) -> str:
        return f"Basic(user={self.user!r}, password={_MASK})"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        raw = f"{self.user}:{self._password.reveal()}".encode()
        r.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        r.register_hook("response", self._on_response)
        return r

    def _on_response(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        if r.status_code == 401:
            _refuse_401(r, f"Basic credentials of {self.user}")
        return r


class Bearer(AuthBase):
    """``Authorization: Bearer`` for the 2011 ``/web`` endpoint and CRM Online.

    Args:
        token: the token, or a callable returning the current one. The callable is asked before every request
            (make it cache, as MSAL's ``acquire_token_silent`` does); on a 401 it is asked again, and if it
            returns a new token the request is re-sent once with it.

    Example:
        >>> Bearer(lambda: "eyJ...")
        Bearer(token=***)
    """

    def __init__(self, token: str | Secret | Callable[[], str]) -> None:
        if callable(token) and not isinstance(token, Secret):
            self._provider: Callable[[], str] | None = token
            self._token: Secret | None = None
        else:
            self._provider = None
            self._token = _secret(token)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Bearer(token={_MASK})"

    def _current(self) -> Secret:
        if self._provider is None:
            assert self._token is not None
            return self._token
        value = self._provider()
        if not value:
            raise AuthenticationError("the bearer token provider returned no token")
        token = _secret(value)
        with self._lock:
            if token != self._token:
                if self._token is not None:
                    log.info("bearer token refreshed")
                self._token = token
        return token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._current()
        r.headers["Authorization"] = "Bearer " + token.reveal()
        r.register_hook("response", self._on_response)
        return r

    def _on_response(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        if r.status_code != 401:
            return r
        sent = str(r.request.headers.get("Authorization") or "").removeprefix("Bearer ")
        fresh = self._current() if self._provider is not None else None
        if fresh is None or fresh.reveal() == sent or getattr(r.request, "_crmload_retried", False):
            _refuse_401(r, "bearer token")
        _drain(r)
        again = r.request.copy()
        again.hooks = default_hooks()
        again.register_hook("response", self._on_response)
        again.headers["Authorization"] = "Bearer " + fresh.reveal()
        again._crmload_retried = True  # type: ignore[attr-defined]
        resp: requests.Response = r.connection.send(again, **kwargs)
        resp.history.append(r)
        return self._on_response(resp, **kwargs) if resp.status_code == 401 else resp


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
        r.register_hook("response", self._on_response)
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
            verify=session.verify,
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


class Ntlm(AuthBase):
    """NTLM over HTTP: one handshake per connection, on connections pinned to the worker that opened them.

    Args:
        user: ``DOMAIN\\\\user`` (or ``user@domain``).
        password: held as a :class:`Secret`.
        max_handshakes: attempts per request before giving up when the connection keeps closing mid-handshake.
        handshake_timeout: (connect, read) seconds for the body-less first leg.

    Pass it as ``CrmClient(..., auth=Ntlm(...))``; the transport sees ``pins_connection`` and calls
    :meth:`prepare` for each worker's session. Used directly as ``requests.Session().auth`` it still works,
    but can only react to 401s (one extra upload of the first body per connection).

    Example:
        >>> Ntlm("CONTOSO\\\\alice", "pw").pins_connection
        True
    """

    pins_connection = True
    _protocol = "ntlm"
    _schemes: tuple[str, ...] = ("NTLM", "Negotiate")

    def __init__(
        self,
        user: str,
        password: str | Secret,
        *,
        max_handshakes: int = 3,
        handshake_timeout: tuple[float, float] = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        if not user or not isinstance(user, str):
            raise ConfigError("NTLM needs a user name such as DOMAIN\\user")
        if max_handshakes < 1:
            raise ConfigError("max_handshakes must be >= 1")
        self.user = user
        self._password = _secret(password)
        self.max_handshakes = max_handshakes
        self.handshake_timeout = handshake_timeout
        self._gate = _Gate()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._counts = {"handshakes": 0, "handshake_attempts": 0, "handshakes_after_401": 0}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(user={self.user!r}, password={_MASK})"

    def prepare(self, session: requests.Session) -> None:
        """Install a per-session authenticator on ``session`` (the transport's auth seam)."""
        session.auth = _ConnectionAuth(self, session)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        state: _ConnectionAuth | None = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _ConnectionAuth(self, None)
        return state(r)

    def stats(self) -> dict[str, int]:
        """Client counters: completed ``handshakes``, ``handshake_attempts``, ``handshakes_after_401``."""
        with self._lock:
            return dict(self._counts)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _context(self, url: str) -> spnego.ContextProxy:
        host = urlsplit(url).hostname or "unspecified"
        return spnego.client(
            self.user, self._password.reveal(), hostname=host, service="HTTP", protocol=self._protocol
        )


class Negotiate(Ntlm):
    """SPNEGO (``Authorization: Negotiate``) with an explicit user and password, NTLM inside where there is no
    Kerberos. Without ``gssapi``/SSPI installed only the NTLM mechanism is available, which IIS accepts.

    Example:
        >>> Negotiate("CONTOSO\\\\alice", "pw")
        Negotiate(user='CONTOSO\\\\alice', password=***)
    """

    _protocol = "negotiate"
    _schemes = ("Negotiate",)
