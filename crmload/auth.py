"""HTTP authentication for the transport: NTLM and Negotiate on pinned connections, Bearer, Basic.

NTLM authenticates the TCP *connection*, not the request (IIS Integrated Windows authentication). So
an ``Ntlm`` object asks the transport for pinned connections (``pins_connection = True``: one
``requests.Session`` with a one-connection pool per worker thread) and installs, per session, a small state
machine (``crmload._ntlm_conn``) that knows which socket it authenticated:

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
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
import spnego
from requests.auth import AuthBase
from requests.hooks import default_hooks

from crmload._ntlm_conn import _ConnectionAuth, _drain, _Gate, _refuse_401
from crmload._tokens import DEFAULT_REFRESH_MARGIN_S, CachedToken, MsalFetcher, scope_for
from crmload.errors import AuthenticationError, ConfigError

__all__ = ["Basic", "Bearer", "ClientCredentials", "Negotiate", "Ntlm", "Secret"]

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
        r.register_hook("response", self._on_response)  # type: ignore[no-untyped-call,unused-ignore]
        return r

    def _on_response(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        if r.status_code == 401:
            _refuse_401(r, f"Basic credentials of {self.user}")
        return r


class Bearer(AuthBase):
    """``Authorization: Bearer`` for the 2011 ``/web`` endpoint and CRM Online.

    Args:
        token: the token, or a callable returning the current one. The callable is asked before every request
            (make it cache, as MSAL's ``acquire_token_silent`` does); on a 401 it is told the refused token
            through its ``invalidate(token)`` method if it has one, then asked again, and if it returns a new
            token the request is re-sent once with it.

    Example:
        >>> Bearer(lambda: "eyJ...")
        Bearer(token=***)
    """

    _what = "bearer token"

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
        r.register_hook("response", self._on_response)  # type: ignore[no-untyped-call,unused-ignore]
        return r

    def _on_response(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        if r.status_code != 401:
            return r
        sent = str(r.request.headers.get("Authorization") or "").removeprefix("Bearer ")
        retried = getattr(r.request, "_crmload_retried", False)
        invalidate = getattr(self._provider, "invalidate", None)
        if callable(invalidate) and not retried:
            invalidate(sent)
        fresh = self._current() if self._provider is not None else None
        if fresh is None or fresh.reveal() == sent or retried:
            _refuse_401(r, self._what)
        _drain(r)
        again = r.request.copy()
        again.hooks = default_hooks()
        again.register_hook("response", self._on_response)  # type: ignore[no-untyped-call,unused-ignore]
        again.headers["Authorization"] = "Bearer " + fresh.reveal()
        again._crmload_retried = True  # type: ignore[attr-defined]
        resp: requests.Response = r.connection.send(again, **kwargs)
        resp.history.append(r)
        return self._on_response(resp, **kwargs) if resp.status_code == 401 else resp


class ClientCredentials(Bearer):
    """``Authorization: Bearer`` with app-only tokens from Azure AD (Entra ID): the OAuth client-credentials
    flow through MSAL (``pip install 'crmload[azure]'``).

    The token is fetched on first use, cached, and refreshed ``refresh_margin_s`` before it expires (never
    later than half its lifetime), by one worker while the others keep sending with the current one. A 401
    to a token the cache still holds (revoked, or a server clock ahead of ours) drops it: one new token is
    fetched and the request re-sent once; a second 401 is an ``AuthenticationError``. A refused secret, an
    unknown tenant or an unreachable authority is a ``TokenError`` (``cause`` says which), raised before
    the request is sent, so the preflight stops the run at once.

    Args:
        tenant: the directory (tenant) id or domain, e.g. ``contoso.onmicrosoft.com``.
        client_id: the application (client) id.
        secret: the client secret; held as a :class:`Secret`.
        scope: the token's scope; default: the CRM URL's origin plus ``/.default``
            (``https://contoso.crm4.dynamics.com/.default``), taken from the first request.
        authority: the authority host, default ``https://login.microsoftonline.com``; sovereign clouds and
            test authorities pass theirs (the tenant is appended). An explicit authority is trusted as given
            (MSAL's instance discovery is off for it).
        verify: TLS verification towards the authority: True, or a CA bundle path. Never off.
        timeout: seconds for each request to the authority.
        refresh_margin_s: refresh this long before expiry.
        clock: monotonic seconds (tests pass a fake clock to drive expiry).

    Example:
        >>> ClientCredentials("contoso.onmicrosoft.com", "my-app-id", "s3cret")
        ClientCredentials(tenant='contoso.onmicrosoft.com', client_id='my-app-id', secret=***)
    """

    def __init__(
        self,
        tenant: str,
        client_id: str,
        secret: str | Secret,
        scope: str | None = None,
        *,
        authority: str | None = None,
        verify: bool | str = True,
        timeout: float = 30.0,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if verify is False:
            raise ConfigError("client credentials always verify the authority's TLS certificate")
        self._secret = _secret(secret)
        self._fetcher = MsalFetcher(
            tenant,
            client_id,
            self._secret.reveal,
            authority=authority,
            verify=verify,
            timeout=timeout,
        )
        if scope is not None:
            self._fetcher.scope = scope if scope.endswith("/.default") else scope_for(scope)
        self._cache = CachedToken(self._fetcher, refresh_margin_s=refresh_margin_s, clock=clock)
        self._what = f"token of application {client_id}"
        super().__init__(self._cache)

    @property
    def tenant(self) -> str:
        return self._fetcher.tenant

    @property
    def client_id(self) -> str:
        return self._fetcher.client_id

    @property
    def scope(self) -> str | None:
        """The scope tokens are asked for (None until given or derived from the first request's URL)."""
        return self._fetcher.scope

    @property
    def authority(self) -> str:
        """The authority URL, tenant included."""
        return self._fetcher.authority

    def __repr__(self) -> str:
        return f"ClientCredentials(tenant={self.tenant!r}, client_id={self.client_id!r}, secret={_MASK})"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._fetcher.scope is None and r.url:
            with self._lock:
                if self._fetcher.scope is None:
                    self._fetcher.scope = scope_for(r.url)
        return super().__call__(r)

    def stats(self) -> dict[str, int]:
        """Client counters: ``token_fetches`` (requests to the authority for a token)."""
        return {"token_fetches": self._cache.fetches}


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
