"""OAuth bearer authentication for the mock's Organization service, as Dataverse answers it.

Accepted tokens map to user names (each a distinct identity: its own WhoAmI UserId and systemuser record id).
With no tokens configured every caller is accepted as the default user, with or without an ``Authorization``
header: a rehearsal against a local mock needs no identity provider. With tokens configured, anything else
gets ``401`` and ``WWW-Authenticate: Bearer authorization_uri=..., resource_id=...``.
Tokens are secrets: they never appear in logs, reprs or stats (only user names do).

Tokens may also be *issued* at run time by the mock's token authority (``crmload.mock.authority``, the
client-credentials flow): each maps to its client id as the user and expires after its lifetime on the
mock's clock; an expired one gets the 401 with ``error="invalid_token"``, as Dataverse answers.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from crmload.errors import ConfigError

__all__ = ["AUTHORIZATION_URI", "DEFAULT_USER", "BearerAuth", "parse_token_spec"]

#: Where a real Dataverse org sends clients for a token (the mock never serves it).
AUTHORIZATION_URI = "https://login.microsoftonline.com/common/oauth2/authorize"
#: The identity of unauthenticated callers when no tokens are configured, and of bare ``--token`` values.
DEFAULT_USER = "default"


def parse_token_spec(text: str) -> tuple[str, str]:
    """Parse a ``--token`` value: ``USER=TOKEN`` (split at the first ``=``) or a bare ``TOKEN`` for the
    default user. A token that itself contains ``=`` must be given with its user."""
    user, sep, token = text.partition("=")
    if not sep:
        user, token = DEFAULT_USER, text
    if not token or not user.strip():
        raise ConfigError("a --token is TOKEN or USER=TOKEN, with neither part empty")
    return token, user.strip()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: the caller's user name, or the 401 headers to answer with."""

    user: str | None
    headers: tuple[tuple[str, str], ...] = ()


class BearerAuth:
    """Checks ``Authorization: Bearer <token>`` against the accepted tokens.

    Args:
        tokens: ``{token: user name}``, or an iterable of tokens (all the default user); empty accepts anyone.
        resource: the resource id announced in the 401 challenge (the org's base URL).
        clock: the clock issued tokens expire on.
    """

    def __init__(
        self,
        tokens: Mapping[str, str] | Iterable[str] | None,
        resource: str = "",
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if tokens is None:
            self._tokens: dict[str, str] = {}
        elif isinstance(tokens, Mapping):
            self._tokens = {str(t): str(u) for t, u in tokens.items()}
        else:
            self._tokens = {str(t): DEFAULT_USER for t in tokens}
        if any(not t for t in self._tokens):
            raise ConfigError("an accepted bearer token must not be empty")
        self.resource = resource
        self._clock = clock
        self._lock = threading.Lock()
        self._issued: dict[str, tuple[str, float]] = {}
        self._issued_users: set[str] = set()

    @property
    def required(self) -> bool:
        """True when tokens are configured or issued (anything else is refused)."""
        return bool(self._tokens or self._issued_users)

    def users(self) -> list[str]:
        """Return the user names the tokens map to (the default user included when none are required)."""
        names = set(self._tokens.values()) | self._issued_users
        return sorted(names | ({DEFAULT_USER} if not self.required else set()))

    def accept_issued(self, users: Iterable[str]) -> None:
        """Require tokens from now on; accept those issued to ``users`` (the token authority's clients)."""
        self._issued_users.update(users)

    def issue(self, token: str, user: str, lifetime_s: float) -> None:
        """Accept ``token`` as ``user`` until ``lifetime_s`` from now."""
        with self._lock:
            self._issued[token] = (user, self._clock() + lifetime_s)

    def expire(self, user: str | None = None) -> int:
        """Expire the issued tokens (of ``user``, or all) now, as a revocation or a server clock ahead would;
        return how many."""
        now = self._clock()
        with self._lock:
            hit = [t for t, (u, _) in self._issued.items() if user is None or u == user]
            for token in hit:
                self._issued[token] = (self._issued[token][0], now)
        return len(hit)

    def check(self, authorization: str | None) -> Verdict:
        """Return the caller's user name, or the challenge headers of a 401."""
        if not self.required:
            return Verdict(DEFAULT_USER)
        scheme, _, token = (authorization or "").strip().partition(" ")
        error = ""
        if scheme.lower() == "bearer":
            token = token.strip()
            for known, user in self._tokens.items():
                if hmac.compare_digest(known.encode(), token.encode()):
                    return Verdict(user)
            with self._lock:
                issued = self._issued.get(token)
            if issued is not None and self._clock() < issued[1]:
                return Verdict(issued[0])
            error = ', error="invalid_token", error_description="The access token expired"' if issued else ""
        challenge = f"Bearer authorization_uri={AUTHORIZATION_URI}, resource_id={self.resource}{error}"
        return Verdict(None, (("WWW-Authenticate", challenge),))

    def __repr__(self) -> str:
        return f"BearerAuth({len(self._tokens)} tokens, {len(self._issued)} issued, users={self.users()})"
