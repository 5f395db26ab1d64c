"""Dialects: what differs between CRM endpoints, and nothing else.

A dialect is a codec (request bytes out, typed values in), a fault parser (HTTP answer to a crmload error)
and a capability record (largest batch, upsert, alternate keys). The client, the retry policy, the limiter
and the transport exist once and take a dialect; a third endpoint is one more ``Dialect`` built here.

The endpoint is picked from the URL:
- ``…/MSCRMServices/2007/CrmService.asmx`` is CRM 4.0 (``"2007"``);
- ``…/XRMServices/2011/Organization.svc/web`` is the Organization service (``"2011"``); the SOAP 1.2
  ``…/Organization.svc`` without ``/web`` is mapped to ``/web``, the one crmload speaks;
- any other URL is an organisation's root (``https://contoso.crm4.dynamics.com/``, on-premises
  ``http://crm/Contoso/``) and means the Organization service, with its path appended;
- ``endpoint="2007"`` or ``"2011"`` overrides; a root URL then gets that endpoint's path.

    >>> select_url("https://contoso.crm4.dynamics.com/")
    ('2011', 'https://contoso.crm4.dynamics.com/XRMServices/2011/Organization.svc/web')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from crmload.errors import ConfigError, CrmLoadError
from crmload.soap import faults, faults2011
from crmload.soap.codec2007 import Codec2007, Page, WhoAmI
from crmload.soap.codec2011 import Codec2011
from crmload.soap.ns import PATH2007, PATH2011

__all__ = ["ENDPOINTS", "Capabilities", "Codec", "Dialect", "build_dialect", "org_from_url", "select_url"]

ENDPOINTS = ("2007", "2011")
_SOAP12_2011 = PATH2011.removesuffix("/web")


class Codec(Protocol):
    """What the client asks of every dialect's codec: the operations all endpoints have, bytes in and out."""

    def soap_action(self, op: str) -> str: ...
    def build_create(self, entity: str, attrs: Mapping[str, object], id: UUID | None = None) -> bytes: ...
    def build_update(self, entity: str, id: UUID, attrs: Mapping[str, object]) -> bytes: ...
    def build_delete(self, entity: str, id: UUID) -> bytes: ...
    def build_retrieve(self, entity: str, id: UUID, columns: Sequence[str] | None = None) -> bytes: ...
    def build_retrieve_multiple(  # noqa: PLR0917
        self,
        entity: str,
        where: Mapping[str, object] | None = None,
        columns: Sequence[str] | None = None,
        page_size: int = 5000,
        page_number: int = 1,
        paging_cookie: str | None = None,
        *,
        dynamic: bool = False,
    ) -> bytes: ...
    def build_who_am_i(self) -> bytes: ...
    def build_execute(self, request_xml: str) -> bytes: ...
    def parse_create(self, body: bytes) -> UUID: ...
    def parse_empty(self, body: bytes) -> None: ...
    def parse_retrieve(self, body: bytes) -> dict[str, Any]: ...
    def parse_retrieve_multiple(self, body: bytes) -> Page: ...
    def parse_who_am_i(self, body: bytes) -> WhoAmI: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What an endpoint can do, so callers ask instead of checking a version.

    Args:
        max_batch: the most requests one call may carry (1: no batches; the client sends items one by one).
        upsert: the server has an Upsert message.
        alternate_keys: records can be named by alternate key (``AltKey``, Upsert ``keys=``).
        multi_select: multi-select option sets (``MultiPicklist``).
    """

    max_batch: int = 1
    upsert: bool = False
    alternate_keys: bool = False
    multi_select: bool = False

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError("max_batch must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Dialect:
    """One endpoint's codec, fault parser and capabilities, bound to its URL.

    ``codec`` offers the same ``build_*``/``parse_*`` names on every dialect for the operations both have
    (create, update, delete, retrieve, retrieve_multiple, who_am_i) and ``soap_action(op)``; batch
    operations exist only where ``capabilities.max_batch > 1``.
    """

    name: str
    url: str
    org: str
    codec: Codec
    parse_fault: Callable[[int, bytes, Mapping[str, str]], CrmLoadError | None]
    capabilities: Capabilities
    content_type: str = "text/xml; charset=utf-8"


def _kind(path: str) -> str | None:
    lower = path.rstrip("/").lower()
    if lower.endswith(PATH2007.lower()):
        return "2007"
    if lower.endswith(PATH2011.lower()) or lower.endswith(_SOAP12_2011.lower()):
        return "2011"
    return None


def select_url(url: str, endpoint: str | None = None) -> tuple[str, str]:
    """Return ``(dialect name, endpoint URL)`` for ``url`` and an optional ``endpoint`` override."""
    if endpoint is not None and endpoint not in ENDPOINTS:
        raise ConfigError(f"endpoint must be one of {', '.join(ENDPOINTS)}, not {endpoint!r}")
    if not isinstance(url, str):
        raise ConfigError(f"url must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ConfigError(f"not a valid URL ({exc}): {url[:80]!r}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"not an http(s) URL: {url[:80]!r}")
    kind = _kind(parts.path)
    if kind is not None and endpoint is not None and kind != endpoint:
        raise ConfigError(f"the URL is a {kind} endpoint but endpoint={endpoint!r} was asked for")
    if kind == "2011" and parts.path.rstrip("/").lower().endswith(_SOAP12_2011.lower()):
        # Organization.svc itself is SOAP 1.2 with message-level WS-Security; /web takes HTTP-level auth.
        return "2011", urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/web"))
    if kind is not None:
        return kind, url
    name = endpoint or "2011"
    path = parts.path.rstrip("/") + (PATH2007 if name == "2007" else PATH2011)
    return name, urlunsplit(parts._replace(path=path))


def org_from_url(url: str) -> str:
    """The organisation a URL names: on-premises the path's first segment, online the host's first label."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[0].lower() not in ("xrmservices", "mscrmservices"):
        return segments[0]
    return (parts.hostname or "").split(".")[0]


def build_dialect(
    url: str,
    *,
    endpoint: str | None = None,
    org: str | None = None,
    caller_id: UUID | None = None,
    null_property: Callable[[str, str], str | None] | None = None,
) -> Dialect:
    """Return the dialect for ``url`` (see the module docstring), with its codec built.

    Args:
        org: the organisation's unique name; required by CRM 4.0 (it travels in every message), taken from
            the URL when not given for the Organization service (it only names the journal's target there).
        caller_id: impersonate this systemuser.
        null_property: CRM 4.0 only: ``(entity, attribute) -> property type`` for typed nulls.
    """
    name, endpoint_url = select_url(url, endpoint)
    if name == "2007":
        if not org:
            raise ConfigError("org is required for the CRM 4.0 endpoint (CrmService.asmx)")
        return Dialect(
            name=name,
            url=endpoint_url,
            org=org,
            codec=Codec2007(org, caller_id, null_property=null_property),
            parse_fault=faults.parse_fault,
            capabilities=Capabilities(),
        )
    return Dialect(
        name=name,
        url=endpoint_url,
        org=org or org_from_url(endpoint_url),
        codec=Codec2011(caller_id=caller_id),
        parse_fault=faults2011.parse_fault,
        capabilities=Capabilities(max_batch=1000, upsert=True, alternate_keys=True, multi_select=True),
    )
