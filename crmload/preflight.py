"""Preflight: one cheap look at the server before a run reads its input, so a wrong URL, TLS set-up,
password, organisation or entity fails in seconds with its cause named, not row by row.

Two calls: WhoAmI (reaches the URL, completes TLS and authentication, and passes the organisation in the
CrmAuthenticationToken), then a RetrieveMultiple of at most one record of the entity, which the server
answers from its own metadata, so a custom entity it knows is never refused for being missing from the
bundled table. WhoAmI gets a short start-up retry budget (``PREFLIGHT_RETRY_POLICY``: a few attempts within
about five seconds): at start an unreachable server means a wrong URL far more often than a blip, whereas
mid-run the full policy stays in force.

The entity check never refuses on doubt: only a fault whose wording says the entity does not exist fails it.
A user who may create but not read gets a PrivilegeDenied there; that is logged and the run goes on (the
circuit breaker still stops a run whose creates are refused).

Example:
    >>> with CrmClient(url, org="Contoso") as crm:          # doctest: +SKIP
    ...     crm.preflight("account").who.organization_id
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from crmload.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    CrmFault,
    CrmLoadError,
    NotAppliedError,
    PreflightError,
    ProtocolError,
    ResponseLostError,
    RetryExhaustedError,
    ServerBusyError,
    TlsError,
    TokenError,
    is_run_level,
)
from crmload.retry import RetryPolicy
from crmload.soap.codec2007 import WhoAmI

__all__ = ["PREFLIGHT_RETRY_POLICY", "PreflightResult", "check"]

log = logging.getLogger(__name__)

#: The start-up budget: 3 attempts, waits of at most 0.5 s then 1 s, none started past 5 s.
PREFLIGHT_RETRY_POLICY = RetryPolicy(max_attempts=3, deadline_s=5.0, backoff_base_s=0.5, backoff_max_s=2.0)

_AGAIN = "nothing was sent or journalled; fix it and run again (--no-preflight skips this check)"


@dataclass(frozen=True, slots=True)
class PreflightResult:
    """What the preflight learnt: who the caller is, and whether the server confirmed the entity."""

    who: WhoAmI
    entity: str | None
    entity_checked: bool


def check(
    client: Any,
    entity: str | None = None,
    *,
    primary_key: str | None = None,
    retry: RetryPolicy = PREFLIGHT_RETRY_POLICY,
) -> PreflightResult:
    """Run WhoAmI, then (with ``entity``) ask the server for one record of it; raise ``PreflightError``.

    Args:
        client: a ``CrmClient`` (anything with ``who_am_i(retry=)`` and ``retrieve_multiple``).
        entity: the entity the run will write; None checks the connection only.
        primary_key: the column to ask for (default ``<entity>id``, CRM's rule for every entity).
        retry: the start-up retry budget for WhoAmI.

    Raises:
        PreflightError: ``cause`` names what is wrong; the error the check met is chained.
        ConfigError: the URL or settings are unusable (nothing was attempted).
    """
    try:
        who = client.who_am_i(retry=retry)
    except ConfigError:
        raise
    except CrmLoadError as exc:
        raise _explain(client, exc, entity) from exc
    if entity is None:
        return PreflightResult(who=who, entity=None, entity_checked=False)
    columns = [primary_key or f"{entity.lower()}id"]
    try:
        next(iter(client.retrieve_multiple(entity, columns=columns, page_size=1)), None)
    except CrmFault as exc:
        if is_run_level(exc) and not _is_privilege(exc):
            raise PreflightError(
                f"preflight: the server does not know entity {entity!r} ({exc.message}); check --entity; "
                + _AGAIN,
                cause="entity",
            ) from exc
        log.warning("preflight: could not confirm entity %r (%s); going on", entity, exc)
        return PreflightResult(who=who, entity=entity, entity_checked=False)
    except CrmLoadError as exc:
        raise _explain(client, exc, entity) from exc
    return PreflightResult(who=who, entity=entity, entity_checked=True)


def _is_privilege(exc: CrmFault) -> bool:
    return (exc.code or "").lower() in ("0x80040220", "0x80048306")


def _explain(client: Any, exc: CrmLoadError, entity: str | None) -> PreflightError:
    """Name the cause of a failed preflight call, in words a user can act on."""
    cause = exc.last if isinstance(exc, RetryExhaustedError) and exc.last is not None else exc
    url = getattr(client, "url", "the server")
    tried = f" after {exc.attempts} attempts" if isinstance(exc, RetryExhaustedError) else ""
    kind, text = _cause_text(cause, url, getattr(client, "org", ""), getattr(client, "endpoint", "2007"))
    return PreflightError(f"preflight: {text}{tried}: {cause}; {_AGAIN}", cause=kind)


def _cause_text(cause: BaseException, url: str, org: str, endpoint: str) -> tuple[str, str]:  # noqa: PLR0911
    if isinstance(cause, TlsError) or (isinstance(cause, ConnectError) and "TLS" in str(cause)):
        return "tls", f"TLS with {url} failed"
    if isinstance(cause, ConnectError):
        return "unreachable", f"cannot reach {url}"
    if isinstance(cause, TokenError):  # raised before anything reached the CRM server
        return "authentication", "no access token for the CRM server"
    if isinstance(cause, ResponseLostError):
        return "unreachable", f"{url} accepted the connection but did not answer"
    if isinstance(cause, AuthenticationError):
        what = "the token" if "bearer" in str(cause).lower() else "the user and password"
        return "authentication", f"the server refused the credentials (check {what})"
    if isinstance(cause, ServerBusyError):
        return "busy", f"{url} stayed busy"
    if isinstance(cause, NotAppliedError | ProtocolError):
        if endpoint == "2011":
            return "endpoint", f"{url} is not an Organization service (XRMServices/2011/Organization.svc/web)"
        return "endpoint", f"{url} is not a CRM 4.0 web service (CrmService.asmx)"
    if isinstance(cause, CrmFault):
        # WhoAmI needs no privilege: a fault to it is about the organisation or the caller.
        if "organi" in cause.message.lower():
            return "organisation", f"organisation {org!r} was not found or is not served there (check --org)"
        return "organisation", f"the server refused the caller in organisation {org!r}"
    return "other", "the server check failed"
