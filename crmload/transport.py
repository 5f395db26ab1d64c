"""One pooled keep-alive HTTP transport: every socket it opens passes the connect guard and is counted.

The transport owns the wire and nothing else. It never retries (the client's tenacity policy owns retries, so
the adapter is built with ``max_retries=0``), and it maps every foreign exception to a crmload error at one
boundary (:func:`crmload._errmap.map_transport_errors`).

Example:
    >>> from crmload.throttle import ConnectGuard            # doctest: +SKIP
    >>> t = Transport(url, workers=8, guard=ConnectGuard(DEFAULT_PORT_BUDGET))   # doctest: +SKIP
    >>> reply = t.post(envelope, {"SOAPAction": action})      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import requests
import urllib3
import urllib3.poolmanager
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool

from crmload._connection import ConnectionMeter, GuardLike, counting_pool_classes
from crmload._errmap import FOREIGN_ERRORS, classify
from crmload.errors import ConfigError, CrmLoadError

__all__ = ["DEFAULT_POOL_LIMITS", "DEFAULT_TIMEOUT", "PoolLimits", "Reply", "Timeout", "Transport"]

log = logging.getLogger(__name__)

_MASK = "***"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout:
    """How long to wait for a connection and for each read of the answer, in seconds.

    Example:
        >>> Timeout(connect_s=5.0, read_s=60.0).as_tuple()
        (5.0, 60.0)
    """

    connect_s: float = 10.0
    read_s: float = 120.0

    def __post_init__(self) -> None:
        for name in ("connect_s", "read_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"Timeout.{name} must be a positive number of seconds, got {value!r}")

    def as_tuple(self) -> tuple[float, float]:
        """Return ``(connect, read)`` as requests takes it."""
        return (float(self.connect_s), float(self.read_s))


DEFAULT_TIMEOUT = Timeout()


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolLimits:
    """Shape of the connection pool.

    Args:
        maxsize: connections kept per host; ``None`` means one per worker.
        pin_connections: one session (and one connection) per worker thread, for connection-bound auth (NTLM).
            ``None`` lets the auth object decide through its ``pins_connection`` attribute.

    Example:
        >>> PoolLimits(maxsize=4).maxsize
        4
    """

    maxsize: int | None = None
    pin_connections: bool | None = None

    def __post_init__(self) -> None:
        size = self.maxsize
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ConfigError(f"PoolLimits.maxsize must be >= 1, got {self.maxsize!r}")


DEFAULT_POOL_LIMITS = PoolLimits()


def check_url(url: object) -> SplitResult:
    """Split ``url``, refusing what would fail later as a built-in error: a bad port, host or scheme."""
    shape = "url must be an absolute http:// or https:// URL"
    if not isinstance(url, str):
        raise ConfigError(shape)
    try:
        parts = urlsplit(url)
        port = parts.port  # parsed lazily: "Port out of range" surfaces only here
        urllib3.util.parse_url(url)  # what requests will parse: it refuses spaces and other bad hosts
    except (ValueError, urllib3.exceptions.LocationParseError) as exc:
        raise ConfigError(f"url {_shown(url)!r} is not a valid URL: {_shown(str(exc), url)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(shape)
    if port == 0:
        raise ConfigError(f"url {_shown(url)!r}: port 0 cannot be connected to")
    return parts


def _shown(text: str, url: str | None = None) -> str:
    """``text`` for a message, short, with the user:password of ``url`` (default: ``text``) masked."""
    # A regex, not urlsplit: this runs on URLs that urlsplit refuses.
    m = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@", url or text)
    userinfo = m.group(1) if m else ""
    return (text.replace(userinfo, _MASK) if userinfo else text)[:160]


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back: status, headers (case-insensitive) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _CountingAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools (direct and through HTTP proxies) build counting connections."""

    def __init__(self, pool_classes: dict[str, type[HTTPConnectionPool]], **kwargs: Any) -> None:
        # Set before super().__init__, which calls init_poolmanager.
        self._pool_classes = pool_classes
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.poolmanager.ProxyManager:
        manager: urllib3.poolmanager.ProxyManager = super().proxy_manager_for(proxy, **kwargs)
        # SOCKS managers bring their own connection classes; only replace urllib3's stock ones.
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = self._pool_classes
        return manager


@dataclass(frozen=True, slots=True)
class _Environment:
    """Proxies, CA bundle and netrc credentials, resolved once for the one URL this transport talks to."""

    proxies: dict[str, str]
    verify: bool | str
    netrc_auth: tuple[str, str] | None


def resolve_environment(url: str, proxies: Mapping[str, str] | None, verify: bool | str) -> _Environment:
    """Do once what ``requests`` does on every call: HTTP(S)_PROXY/NO_PROXY, CA bundle variables, ~/.netrc.

    Explicit ``proxies`` win over the environment, as in requests. Changes to the environment after the
    transport starts are not seen; that is the price of not paying ~30 % CPU per call for them.
    """
    explicit = dict(proxies or {})
    resolved = dict(requests.utils.get_environ_proxies(url, no_proxy=explicit.get("no_proxy")))
    resolved.update(explicit)
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    netrc = requests.utils.get_netrc_auth(url)
    return _Environment(proxies=resolved, verify=verify, netrc_auth=netrc)


class Transport:
    """POST bytes to one CRM endpoint over pooled keep-alive connections, counting every socket opened.

    Args:
        url: the endpoint, ``http://`` or ``https://``.
        workers: threads that will share the transport; sizes the pool (``pool_block=True``, so no thread ever
            opens a connection the pool would then discard).
        timeout: connect and read timeouts (:data:`DEFAULT_TIMEOUT`).
        guard: the always-on new-connection guard (``crmload.throttle.ConnectGuard``); ``acquire()`` runs
            before every socket is created.
        auth: see *Auth seam* below. ``None`` means no HTTP authentication.
        verify: TLS verification, on by default; or a CA bundle path.
        proxies: explicit proxies, merged over HTTP(S)_PROXY/NO_PROXY once at start.
        limits: pool shape (:class:`PoolLimits`).
        trust_env_per_call: let requests re-read proxies/netrc on every call (slower; for benchmarks and for
            programs that change proxy variables while running).
        direct: post through the session adapter's urllib3 pool, skipping requests' per-call request
            building, hooks and cookie jar, when nothing needs them (no auth, no proxy, no netrc). Same
            pool, same counted sockets, same guard, less client CPU per call (see BENCHMARKS.md). False
            always goes through ``Session.post`` (for servers that need cookies, e.g. an affinity cookie).
        clock: the guard's clock, used to time-stamp the connect window in ``stats()``.

    Auth seam:
        NTLM authenticates a *connection*, not a request, so its handshake must stay on one socket.
        When ``limits.pin_connections`` is true, or the auth object has ``pins_connection = True``, each
        worker thread gets its own ``requests.Session`` with a pool of exactly one connection; all sessions
        share this transport's guard and counters. For every session created, the auth object may implement
        ``prepare(session)`` to install itself (adapters, headers, ``session.auth``); otherwise, if it is a
        ``requests.auth.AuthBase`` or a ``(user, password)`` tuple, it is set as ``session.auth``.
    """

    def __init__(
        self,
        url: str,
        *,
        workers: int = 1,
        timeout: Timeout | None = None,
        guard: GuardLike,
        auth: Any = None,
        verify: bool | str = True,
        proxies: Mapping[str, str] | None = None,
        limits: PoolLimits | None = None,
        trust_env_per_call: bool = False,
        direct: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = check_url(url)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be a positive integer, got {workers!r}")
        limits = limits or DEFAULT_POOL_LIMITS
        self._url = url
        self._safe_url = parts._replace(
            netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        ).geturl()
        self._what = "POST " + self._safe_url  # names the exchange in error messages; never a secret
        self._timeout = (timeout or DEFAULT_TIMEOUT).as_tuple()
        self._auth = auth
        self._meter = ConnectionMeter(guard, clock)
        self._pool_classes = counting_pool_classes(self._meter)
        self._per_call_env = trust_env_per_call
        self._env = (
            _Environment(dict(proxies or {}), verify, None)
            if trust_env_per_call
            else resolve_environment(url, proxies, verify)
        )
        pin = limits.pin_connections
        self._pinned = bool(getattr(auth, "pins_connection", False)) if pin is None else pin
        self._pool_size = 1 if self._pinned else (limits.maxsize or workers)
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []
        self._local = threading.local()
        self._closed = False
        self._requests = 0
        self._bytes_sent = 0
        self._bytes_received = 0
        self._shared = None if self._pinned else self._new_session()
        self._direct = self._direct_pool(self._shared) if direct else None
        self._u3_timeout = urllib3.Timeout(connect=self._timeout[0], read=self._timeout[1])
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        shared_headers = self._shared.headers.items() if self._shared is not None else ()
        self._default_headers: dict[str, str] = {k: str(v) for k, v in shared_headers}

    @property
    def url(self) -> str:
        """The endpoint URL with any user:password removed (safe to log)."""
        return self._safe_url

    @property
    def pinned(self) -> bool:
        """True when each worker thread has its own session and connection."""
        return self._pinned

    def post(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """Send one POST and read the whole answer. Raises only crmload errors (ConnectError, ...)."""
        session = self._session()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("POST %s %d bytes headers=%s", self._safe_url, len(body), mask_headers(headers))
        # The one boundary (as ``map_transport_errors``), spelled out: this runs on every call.
        try:
            if self._direct is not None:
                reply = self._post_direct(self._direct, body, headers)
            else:
                resp = session.post(
                    self._url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
                )
                reply = Reply(status=resp.status_code, headers=resp.headers, body=resp.content)
        except CrmLoadError:
            raise
        except FOREIGN_ERRORS as exc:
            raise classify(exc, self._what) from exc
        with self._lock:
            self._requests += 1
            self._bytes_sent += len(body)
            self._bytes_received += len(reply.body)
        return reply

    def _post_direct(self, pool: HTTPConnectionPool, body: bytes, headers: Mapping[str, str]) -> Reply:
        merged = dict(self._default_headers)
        merged.update(headers)
        resp = pool.urlopen(
            "POST",
            self._path,
            body=body,
            headers=merged,
            retries=False,  # tenacity is the one owner of retries
            redirect=False,
            assert_same_host=False,
            timeout=self._u3_timeout,
            preload_content=True,
            decode_content=True,
        )
        return Reply(status=resp.status, headers=resp.headers, body=resp.data)

    def _direct_pool(self, session: requests.Session | None) -> HTTPConnectionPool | None:
        """The adapter's own urllib3 pool for our URL, when requests' per-call machinery adds nothing."""
        if session is None or self._auth is not None or self._env.netrc_auth is not None:
            return None
        if requests.utils.select_proxy(self._url, self._env.proxies):
            return None
        adapter = session.get_adapter(self._url)
        if not isinstance(adapter, _CountingAdapter):
            return None
        prepared = requests.Request("POST", self._url).prepare()
        host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(prepared, self._env.verify)
        pool: HTTPConnectionPool = adapter.poolmanager.connection_from_host(
            **host_params, pool_kwargs=pool_kwargs
        )
        return pool

    def stats(self) -> dict[str, Any]:
        """Sockets opened and connect attempts, guard waits, requests and bytes, pool shape."""
        out = self._meter.snapshot()
        with self._lock:
            out.update(
                requests=self._requests,
                bytes_sent=self._bytes_sent,
                bytes_received=self._bytes_received,
                sessions=len(self._sessions),
            )
        out.update(pool_maxsize=self._pool_size, pinned=self._pinned)
        return out

    def close(self) -> None:
        """Close every session and its pooled sockets. Idempotent."""
        with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _session(self) -> requests.Session:
        if self._closed:
            raise ConfigError("the transport is closed")
        if self._shared is not None:
            return self._shared
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._new_session()
            self._local.session = session
        return session

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        adapter = _CountingAdapter(
            self._pool_classes,
            pool_connections=1,
            pool_maxsize=self._pool_size,
            pool_block=True,
            max_retries=0,
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.proxies = dict(self._env.proxies)
        session.verify = self._env.verify
        # After capture, requests need not re-read the environment on every call (measured ~30 % CPU).
        session.trust_env = self._per_call_env
        self._install_auth(session)
        with self._lock:
            if self._closed:
                session.close()
                raise ConfigError("the transport is closed")
            self._sessions.append(session)
        return session

    def _install_auth(self, session: requests.Session) -> None:
        auth = self._auth
        if auth is None:
            if self._env.netrc_auth is not None:
                session.auth = self._env.netrc_auth
            return
        prepare = getattr(auth, "prepare", None)
        if callable(prepare):
            prepare(session)
        else:
            session.auth = auth


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``headers`` safe to log: credentials and cookies are masked."""
    return {k: (_MASK if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}
