"""The token source behind ``ClientCredentials``: one cached OAuth access token, refreshed before it expires,
fetched by one thread while the others wait (or, during a proactive refresh, keep using the old one).

Two parts, so the policy can be tested on a fake clock without a network:

* ``CachedToken``: pure cache and single-flight policy over any ``fetch() -> (token, lifetime_s)``, with an
  injected ``clock``. The hot path is one attribute read and one comparison, without a lock.
* ``MsalFetcher``: the client-credentials flow through MSAL (the ``crmload[azure]`` extra), imported lazily,
  with its own ``requests`` session that verifies TLS against the given CA bundle. Every MSAL failure becomes
  a ``TokenError`` at the one boundary in ``crmload._errmap``.

Expiry is counted on the injected clock (monotonic by default) from the moment the request for the token was
sent, so a slow answer only makes the token look older than it is. MSAL's own cache is emptied before every
fetch: this cache decides when to refresh, and MSAL, which reads the wall clock, would otherwise hand back the
token this cache just decided to replace.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from crmload._errmap import map_token_errors, token_refusal
from crmload.errors import ConfigError, CrmLoadError

__all__ = ["DEFAULT_AUTHORITY", "DEFAULT_REFRESH_MARGIN_S", "CachedToken", "MsalFetcher", "scope_for"]

log = logging.getLogger(__name__)

#: Azure AD's public cloud; sovereign clouds (``https://login.microsoftonline.us``, ...) pass ``authority``.
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
#: Refresh this long before expiry (Azure AD tokens live 60-90 min); never more than half the lifetime.
DEFAULT_REFRESH_MARGIN_S = 300.0
#: After a failed proactive refresh, the old token is used and the refresh retried this much later at most.
_RETRY_REFRESH_S = 30.0
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")

Fetch = Callable[[], tuple[str, float]]


@dataclass(frozen=True, slots=True)
class _Entry:
    token: str
    refresh_at: float
    expires_at: float


class CachedToken:
    """One access token, fetched on first use, refreshed ``margin`` before expiry; thread-safe.

    Args:
        fetch: returns ``(access_token, lifetime_s)``; raises a crmload error when it cannot.
        refresh_margin_s: how long before expiry to refresh (capped at half the token's lifetime).
        clock: seconds on a monotonic scale (tests pass a fake one).

    Only one thread fetches at a time. While the old token is still valid, the others keep using it; when
    there is none (first use, expired, or invalidated after a 401), they wait for the one fetch.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_margin_s < 0:
            raise ConfigError("refresh_margin_s must be >= 0")
        self._fetch = fetch
        self._margin = refresh_margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entry: _Entry | None = None
        self.fetches = 0

    def __call__(self) -> str:
        entry = self._entry
        now = self._clock()
        if entry is not None and now < entry.refresh_at:
            return entry.token
        if entry is not None and now < entry.expires_at:
            # Due for refresh but still valid: one thread refreshes, the others go on with the old token.
            if not self._lock.acquire(blocking=False):
                return entry.token
            try:
                return self._refresh_early(entry)
            finally:
                self._lock.release()
        with self._lock:
            entry = self._entry
            if entry is not None and self._clock() < entry.expires_at:
                return entry.token  # another thread fetched it while this one waited
            return self._fetch_now().token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the server answered 401 to it) so the next call fetches a new one.

        A token other than the cached one means another thread already replaced it: nothing to do.
        """
        with self._lock:
            if self._entry is not None and self._entry.token == token:
                log.info("access token refused by the server before its expiry; fetching a new one")
                self._entry = None

    def _refresh_early(self, entry: _Entry) -> str:
        if self._entry is not entry:
            return self._entry.token if self._entry is not None else entry.token
        try:
            return self._fetch_now().token
        except CrmLoadError as exc:  # the old token is still good; the cause is logged
            now = self._clock()
            retry_at = min(now + _RETRY_REFRESH_S, now + (entry.expires_at - now) / 2)
            self._entry = _Entry(entry.token, retry_at, entry.expires_at)
            log.warning("access token refresh failed; using the current one until it expires: %s", exc)
            return entry.token

    def _fetch_now(self) -> _Entry:
        started = self._clock()
        self.fetches += 1
        token, lifetime = self._fetch()
        if not token or lifetime <= 0:
            raise token_refusal({"error": "invalid_response", "error_description": "no usable token"})
        margin = min(self._margin, lifetime / 2)
        entry = _Entry(token, started + lifetime - margin, started + lifetime)
        self._entry = entry
        log.debug("access token acquired; valid %.0f s, refresh after %.0f s", lifetime, lifetime - margin)
        return entry


def scope_for(url: str) -> str:
    """The client-credentials scope of a CRM/Dataverse organisation: its origin plus ``/.default``.

    Example:
        >>> scope_for("https://contoso.crm4.dynamics.com/XRMServices/2011/Organization.svc/web")
        'https://contoso.crm4.dynamics.com/.default'
    """
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ConfigError(
            "the scope is derived from an absolute CRM URL such as https://org.crm.dynamics.com"
        )
    return f"{parts.scheme}://{parts.netloc}/.default"


def authority_url(tenant: str, authority: str | None) -> str:
    """``{authority host}/{tenant}``, checked: MSAL needs https, and the tenant is one path segment."""
    if not tenant or not _TENANT.match(tenant):
        raise ConfigError("the tenant must be a tenant id (GUID) or a domain such as contoso.onmicrosoft.com")
    base = (authority or DEFAULT_AUTHORITY).rstrip("/")
    parts = urlsplit(base)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"the authority must be an https:// URL such as {DEFAULT_AUTHORITY}, not {base!r}")
    return f"{base}/{tenant}"


class MsalFetcher:
    """Fetches app-only tokens with MSAL's client-credentials flow; builds the MSAL app on first use.

    The app is built lazily because MSAL reads the authority's OpenID configuration in its constructor: a
    network call that belongs to the first request (and to the preflight's error handling), not to
    constructing a client. Call only under ``CachedToken``'s lock: one fetch at a time.
    """

    def __init__(
        self,
        tenant: str,
        client_id: str,
        secret: Callable[[], str],
        *,
        authority: str | None,
        verify: bool | str,
        timeout: float,
    ) -> None:
        if not client_id:
            raise ConfigError("client credentials need a client (application) id")
        self.tenant = tenant
        self.client_id = client_id
        self.authority = authority_url(tenant, authority)
        self._explicit_authority = authority is not None
        self._secret = secret
        self._verify = verify
        self._timeout = timeout
        self.scope: str | None = None
        self._app: Any = None

    def __call__(self) -> tuple[str, float]:
        if self.scope is None:
            raise ConfigError("client credentials need a scope: pass scope= or use them with a CRM URL")
        who = {"client_id": self.client_id, "tenant": self.tenant, "authority": self.authority}
        with map_token_errors(**who, mask=self._secret()):
            app = self._app or self._build()
            app.remove_tokens_for_client()
            result = app.acquire_token_for_client(scopes=[self.scope])
        if not isinstance(result, dict) or not result.get("access_token"):
            raise token_refusal(result if isinstance(result, dict) else {}, **who, mask=self._secret())
        return str(result["access_token"]), float(result.get("expires_in") or 0)

    def _build(self) -> Any:
        try:
            import msal  # noqa: PLC0415 - an optional extra, imported when first needed
        except ImportError:  # pragma: no cover - the test extra installs it
            raise ConfigError("client credentials need MSAL: pip install 'crmload[azure]'") from None
        import requests  # noqa: PLC0415

        session = requests.Session()
        session.verify = self._verify
        # Per call: requests lets $REQUESTS_CA_BUNDLE override a session's verify, but not a call's.
        session.request = _per_call(session.request, self._timeout, self._verify)  # type: ignore[method-assign]
        self._app = msal.ConfidentialClientApplication(
            self.client_id,
            client_credential=self._secret(),
            authority=self.authority,
            http_client=session,
            # Instance discovery asks login.microsoftonline.com whether a host is an authority: the user
            # named it (a sovereign cloud, a test authority), so it is trusted as given.
            instance_discovery=not self._explicit_authority,
            validate_authority=not self._explicit_authority,
        )
        return self._app


def _per_call(request: Callable[..., Any], timeout: float, verify: bool | str) -> Callable[..., Any]:
    def send(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        kwargs["verify"] = verify
        return request(*args, **kwargs)

    return send
