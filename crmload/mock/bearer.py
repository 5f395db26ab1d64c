"""OAuth bearer authentication for the mock's Organization service, as Dataverse answers it.

Accepted tokens map to user names (each a distinct identity: its own WhoAmI UserId and systemuser record id).
With no tokens configured every caller is accepted as the default user, with or without an ``Authorization``
header: a rehearsal against a local mock needs no identity provider. With tokens configured, anything else
gets ``401`` and ``WWW-Authenticate: Bearer authorization_uri=..., resource_id=...``.
Tokens are secrets: they never appear in logs, reprs or stats (only user names do).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
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
    """

    def __init__(self, tokens: Mapping[str, str] | Iterable[str] | None, resource: str = "") -> None:
        if tokens is None:
            self._tokens: dict[str, str] = {}
        elif isinstance(tokens, Mapping):
            self._tokens = {str(t): str(u) for t, u in tokens.items()}
        else:
            self._tokens = {str(t): DEFAULT_USER for t in tokens}
        if any(not t for t in self._tokens):
            raise ConfigError("an accepted bearer token must not be empty")
        self.resource = resource

    @property
    def required(self) -> bool:
        """True when tokens are configured (anything else is refused)."""
        return bool(self._tokens)

    def users(self) -> list[str]:
        """Return the user names the tokens map to (the default user included when none are required)."""
        return sorted(set(self._tokens.values()) | ({DEFAULT_USER} if not self._tokens else set()))

    def check(self, authorization: str | None) -> Verdict:
        """Return the caller's user name, or the challenge headers of a 401."""
        if not self._tokens:
            return Verdict(DEFAULT_USER)
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer":
            token = token.strip()
            for known, user in self._tokens.items():
                if hmac.compare_digest(known.encode(), token.encode()):
                    return Verdict(user)
        challenge = f"Bearer authorization_uri={AUTHORIZATION_URI}, resource_id={self.resource}"
        return Verdict(None, (("WWW-Authenticate", challenge),))

    def __repr__(self) -> str:
        return f"BearerAuth({len(self._tokens)} tokens, users={self.users()})"
