"""An Azure-AD-like token authority on the mock's port, for rehearsing the client-credentials flow (MSAL).

It serves what MSAL's ``ConfidentialClientApplication`` asks for when its authority is
``{mock}/{tenant}`` and instance discovery is off:

* ``GET /{tenant}/v2.0/.well-known/openid-configuration``: the tenant's OpenID configuration;
* ``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` and ``scope``: ``{"token_type": "Bearer", "expires_in": N, "access_token": ...}``.

Refusals carry Azure AD's error codes and AADSTS numbers (unknown tenant 90002, unknown application 700016,
wrong secret 7000215, unknown resource 500011), so a client's error mapping is tested against the real
vocabulary. The scope must be the organisation's own (``{mock base URL}/.default``), as the audience of a
Dataverse token must be the org. Issued tokens are random and opaque; ``BearerAuth`` accepts them on the
Organization service as the client id until they expire on the mock's clock. Real Azure AD serves HTTPS
only, and so does MSAL: run the mock with a TLS context (``MockCrm(tls=...)``, ``--tls-cert``).

Secrets (client secrets and issued tokens) never appear in logs, stats or reprs; counters do.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from crmload.errors import ConfigError
from crmload.mock.bearer import BearerAuth
from crmload.mock.http import Request

__all__ = ["DEFAULT_TOKEN_LIFETIME_S", "TokenAuthority", "parse_client_spec"]

#: Azure AD's default access-token lifetime is 60-90 minutes.
DEFAULT_TOKEN_LIFETIME_S = 3600
_JSON = "application/json; charset=utf-8"
_PATH = re.compile(
    r"^/([A-Za-z0-9][A-Za-z0-9.\-]*)/(v2\.0/\.well-known/openid-configuration|oauth2/v2\.0/token)$"
)
_DISCOVERY = "v2.0/.well-known/openid-configuration"

Answer = tuple[int, str, bytes]


def parse_client_spec(text: str) -> tuple[str, str]:
    """Parse a ``--client`` value, ``CLIENT_ID=SECRET`` (split at the first ``=``)."""
    client_id, sep, secret = text.partition("=")
    if not sep or not client_id.strip() or not secret:
        raise ConfigError("a --client is CLIENT_ID=SECRET, with neither part empty")
    return client_id.strip(), secret


class TokenAuthority:
    """Issues client-credentials tokens to the configured clients; counts what it was asked.

    Args:
        clients: ``{client_id: secret}``.
        bearer: the Organization service's gate, which learns every issued token.
        tenants: the tenants that exist; None accepts any tenant name.
        lifetime_s: ``expires_in`` of every issued token.
    """

    def __init__(
        self,
        clients: Mapping[str, str],
        bearer: BearerAuth,
        *,
        tenants: Iterable[str] | None = None,
        lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S,
    ) -> None:
        if not clients or any(not c or not s for c, s in clients.items()):
            raise ConfigError("the token authority needs clients, each with an id and a secret")
        if lifetime_s < 1:
            raise ConfigError("the token lifetime must be at least 1 second")
        self._clients = dict(clients)
        self._tenants = None if tenants is None else {t.lower() for t in tenants}
        self.lifetime_s = lifetime_s
        self._bearer = bearer
        bearer.accept_issued(self._clients)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._refusals: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"TokenAuthority(clients={sorted(self._clients)}, lifetime_s={self.lifetime_s})"

    @staticmethod
    def handles(path: str) -> bool:
        """True for the two paths the authority serves (any tenant; unknown tenants get Azure AD's 400)."""
        return _PATH.match(path) is not None

    def answer(self, req: Request, base_url: str) -> Answer:
        """Answer one request to a path ``handles`` accepted: (status, content type, body)."""
        match = _PATH.match(req.path)
        assert match is not None
        tenant, what = match.group(1), match.group(2)
        if what == _DISCOVERY:
            if req.method != "GET":
                return _json(405, {"error": "method_not_allowed"})
            self._count("discovery_requests")
            if not self._tenant_ok(tenant):
                return self._refuse(400, "invalid_tenant", 90002, _no_tenant(tenant))
            return _json(200, _openid_configuration(base_url, tenant))
        if req.method != "POST":
            return _json(405, {"error": "method_not_allowed"})
        self._count("token_requests")
        return self._token(tenant, req.body, req.headers.get("authorization", ""), base_url)

    def stats(self) -> dict[str, Any]:
        """``discovery_requests``, ``token_requests``, ``tokens_issued`` and ``refused`` by OAuth error."""
        with self._lock:
            out: dict[str, Any] = {k: self._counts[k] for k in ("discovery_requests", "token_requests")}
            out["tokens_issued"] = self._counts["tokens_issued"]
            out["refused"] = dict(self._refusals)
            return out

    def reset(self) -> None:
        """Zero the counters; issued tokens stay valid."""
        with self._lock:
            self._counts.clear()
            self._refusals.clear()

    def _token(self, tenant: str, body: bytes, authorization: str, base_url: str) -> Answer:
        try:
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), strict_parsing=True).items()}
        except (UnicodeDecodeError, ValueError):
            form = {}
        form.update(_basic(authorization))  # client_secret_basic, RFC 6749 2.3.1
        if form.get("grant_type") != "client_credentials":
            text = "The provided value for the input parameter 'grant_type' is not valid."
            return self._refuse(400, "unsupported_grant_type", 70003, text)
        if not self._tenant_ok(tenant):
            return self._refuse(400, "invalid_request", 90002, _no_tenant(tenant))
        client_id = form.get("client_id", "")
        known = self._clients.get(client_id)
        if known is None:
            text = f"Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            return self._refuse(400, "unauthorized_client", 700016, text)
        if not hmac.compare_digest(known.encode(), form.get("client_secret", "").encode()):
            text = (
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'."
            )
            return self._refuse(401, "invalid_client", 7000215, text)
        resource = base_url.rstrip("/")
        scopes = form.get("scope", "").split()
        if [s.lower() for s in scopes] != [f"{resource}/.default".lower()]:
            text = f"The resource principal named {' '.join(scopes) or '(none)'} was not found in the tenant."
            return self._refuse(400, "invalid_scope", 500011, text)
        token = "mock." + secrets.token_urlsafe(32)
        self._bearer.issue(token, client_id, self.lifetime_s)
        self._count("tokens_issued")
        doc = {"token_type": "Bearer", "expires_in": self.lifetime_s, "ext_expires_in": self.lifetime_s}
        doc["access_token"] = token
        return _json(200, doc)

    def _tenant_ok(self, tenant: str) -> bool:
        return self._tenants is None or tenant.lower() in self._tenants

    def _refuse(self, status: int, error: str, code: int, text: str) -> Answer:
        with self._lock:
            self._refusals[error] += 1
        doc = {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: mock",
            "error_codes": [code],
        }
        return _json(status, doc)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1


def _basic(authorization: str) -> dict[str, str]:
    scheme, _, blob = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return {}
    try:
        client_id, _, secret = base64.b64decode(blob.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return {}
    return {"client_id": unquote_plus(client_id), "client_secret": unquote_plus(secret)}


def _no_tenant(tenant: str) -> str:
    return (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud."
    )


def _openid_configuration(base_url: str, tenant: str) -> dict[str, Any]:
    root = f"{base_url.rstrip('/')}/{tenant}"
    return {
        "issuer": f"{root}/v2.0",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials"],
        "tenant_region_scope": "mock",
    }


def _json(status: int, doc: Any) -> Answer:
    return status, _JSON, json.dumps(doc, sort_keys=True).encode("utf-8")
