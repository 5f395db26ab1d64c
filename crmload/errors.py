"""The one exception tree of crmload.

Every error that leaves the library is a ``CrmLoadError``. Foreign exceptions (requests, urllib3, socket,
lxml) are mapped at one boundary (``crmload._errmap``, used by the transport) and chained with
``raise ... from exc``. The tree names the question a retry has to answer: was the request sent, and may it
have been applied?

    CrmLoadError
    ├── ConfigError                  bad arguments or settings; nothing was attempted
    │   └── BadValueError            a value type refused its argument (Money("abc")); also a ValueError
    ├── InputError                   a source row could not be read or mapped (line_no, column, value)
    │   ├── SourceError              phase "read": undecodable bytes, ragged row, bad header
    │   └── MappingError             phase "map": a value that does not convert to its CRM type
    ├── EncodingError                a value XML 1.0 cannot carry (control characters); phase "map"
    ├── JournalError                 the journal refuses (other target, other file, run already exists) or
    │   │                            fails (unwritable, full disk, damaged file); the message names the file
    │   └── JournalBusyError         another live run holds the journal's lock; ``pid`` and ``host`` name it
    ├── TransportError               the HTTP exchange failed; ``phase`` is "connect" or "send"
    │   ├── ConnectError             never sent: always safe to retry
    │   │   └── PortExhaustedError   EADDRINUSE / EADDRNOTAVAIL: the host ran out of ephemeral ports
    │   ├── TlsError                 never sent: the TLS handshake or certificate was refused; retrying
    │   │                            repeats the refusal, so it is not retried (phase "connect")
    │   └── ResponseLostError        sent, answer lost: maybe applied; retry only if idempotent
    ├── AuthenticationError          credentials refused (HTTP 401 after a full handshake); never retried
    │   └── TokenError               no access token from the authority (client credentials); ``cause``
    │                                names why: secret, client, tenant, scope, unreachable, tls, authority
    ├── ServerBusyError              HTTP 503/429 or a throttling fault; retry after ``retry_after``
    │   └── ServiceProtectionError   a service-protection fault (Organization service): never ran; ``facet``
    │                                names the limit ("requests", "execution_time", "concurrency")
    ├── ProtocolError                the server answered something that is not CRM's protocol (maybe applied)
    │   └── NotAppliedError          never applied: a redirect, a 4xx before any SOAP processing, or a body
    │                                that is not SOAP (a login or error page); not retried, every row would
    │                                get the same answer: the run stops with its rows pending
    ├── CrmFault                     CRM answered with a SOAP fault; ``code`` is the hex string ("0x80040217")
    │   ├── RecordNotFound           0x80040217 ObjectDoesNotExist
    │   ├── DuplicateRecord          0x80040237 DuplicateRecord
    │   ├── PrivilegeDenied          0x80040220 PrivilegeDenied
    │   ├── InvalidArgument          0x80040203 InvalidArgument (and other invalid-argument codes)
    │   ├── RequiredFieldMissing     0x80040200
    │   └── BatchTooLargeError       ExecuteMultiple over MaxBatchSize; nothing ran: split and resend
    ├── ItemNotRunError              a batch item the server never ran (an earlier item stopped the batch)
    ├── RetryExhaustedError          retries gave up; ``last`` holds the final cause, ``attempts`` the count
    └── RunLevelError                the run, not a row, is wrong: nothing was applied, rows stay pending;
        │                            fix the cause, then ``--resume``
        ├── PreflightError           the start-up check failed; ``cause`` names what (unreachable, tls,
        │                            authentication, organisation, entity, endpoint, busy)
        └── CircuitOpenError         ``count`` sent rows in a row failed with the same run-level ``code``

Args common to all: ``message``. Structured fields are keyword-only and default to ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AuthenticationError",
    "BadValueError",
    "BatchTooLargeError",
    "CircuitOpenError",
    "ConfigError",
    "ConnectError",
    "CrmFault",
    "CrmLoadError",
    "DuplicateRecord",
    "EncodingError",
    "InputError",
    "InvalidArgument",
    "ItemNotRunError",
    "JournalBusyError",
    "JournalError",
    "MappingError",
    "NotAppliedError",
    "PortExhaustedError",
    "PreflightError",
    "PrivilegeDenied",
    "ProtocolError",
    "RecordNotFound",
    "RequiredFieldMissing",
    "ResponseLostError",
    "RetryExhaustedError",
    "RunLevelError",
    "ServerBusyError",
    "ServiceProtectionError",
    "SourceError",
    "TlsError",
    "TokenError",
    "TransportError",
    "fault_for_code",
    "is_run_level",
]


class CrmLoadError(Exception):
    """Root of every error crmload raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CrmLoadError):
    """Bad arguments or settings; nothing was sent."""


class BadValueError(ConfigError, ValueError, TypeError):
    """A value type (``Money``, ``Picklist``, ``Lookup``...) or a call refused an argument.

    It is also a ``ValueError`` and a ``TypeError``, the built-ins these checks raised before, so code that
    converts values with ``except ValueError`` keeps working while ``except CrmLoadError`` catches it too.
    """


class InputError(CrmLoadError):
    """A source row could not be read or mapped. The run goes on; the row is rejected."""

    phase = "map"

    def __init__(
        self,
        message: str,
        *,
        line_no: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(message)
        self.line_no = line_no
        self.column = column
        self.value = value


class SourceError(InputError):
    """A row that cannot be read: undecodable bytes, a ragged row, a bad header."""

    phase = "read"


class MappingError(InputError):
    """A value that does not convert to its CRM type."""

    phase = "map"


class EncodingError(InputError):
    """A value that XML 1.0 cannot carry, such as a control character."""

    phase = "map"


class JournalError(CrmLoadError):
    """The journal refuses the run (another target, another file, a run that exists) or cannot be written."""


class JournalBusyError(JournalError):
    """Another live process holds the journal's lock; ``pid`` and ``host`` name it when it wrote them."""

    def __init__(self, message: str, *, pid: int | None = None, host: str | None = None) -> None:
        super().__init__(message)
        self.pid = pid
        self.host = host


class TransportError(CrmLoadError):
    """The HTTP exchange failed. ``phase`` says how far it got: "connect" or "send"."""

    phase = "send"

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class ConnectError(TransportError):
    """The connection could not be made, so the request was never sent. Always safe to retry."""

    phase = "connect"


class PortExhaustedError(ConnectError):
    """EADDRINUSE (10048) or EADDRNOTAVAIL (10049/99): the host has no free ephemeral port."""


class TlsError(TransportError):
    """The TLS handshake failed or the certificate did not verify: never sent, and not retried.

    A server that does not speak TLS on this port, or a certificate this host does not trust, gives the same
    answer on every attempt; the fix is the URL, the CA bundle or ``verify``.
    """

    phase = "connect"


class ResponseLostError(TransportError):
    """The request was sent but no answer came back, so it may have been applied.

    Retry only idempotent operations. ``maybe_applied`` is always True; it is a field so that callers and the
    journal can record the fact without an isinstance check.
    """

    maybe_applied = True


class AuthenticationError(CrmLoadError):
    """The server refused the credentials. Never retried: a retry storm only locks the account."""


class TokenError(AuthenticationError):
    """No access token: the authority refused the client credentials or could not be reached.

    Raised before the request it was for is sent. ``cause`` is one of "secret", "client", "tenant",
    "scope", "unreachable", "tls", "authority" or "other"; the message never holds the secret.
    """

    def __init__(self, message: str, *, cause: str = "other") -> None:
        super().__init__(message)
        self.cause = cause


class ServerBusyError(CrmLoadError):
    """The server asked us to slow down: HTTP 503/429 or a throttling fault."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class ServiceProtectionError(ServerBusyError):
    """A service-protection fault: the request never ran; every caller with this identity should wait.

    ``facet`` is "requests", "execution_time" or "concurrency" (``SERVICE_PROTECTION_FACETS`` maps the
    codes); ``retry_after`` comes from ``ErrorDetails["Retry-After"]`` or the HTTP header.
    """

    def __init__(
        self,
        message: str,
        *,
        facet: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, retry_after=retry_after)
        self.facet = facet


class ProtocolError(CrmLoadError):
    """The server answered something that is not CRM's protocol (bad XML, unexpected status)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotAppliedError(ProtocolError):
    """The server answered, and the answer proves CRM never processed the request.

    A redirect (``location`` holds its target), a 4xx before any SOAP processing (404 wrong path, 405, 400),
    or a body that is not SOAP (an HTML login or error page, even with HTTP 200 or 500). Nothing was applied,
    so a row is never in doubt for it; nor is it retried: every row would get the same answer. The loader
    stops the run with the rows pending.
    """

    def __init__(self, message: str, *, status: int | None = None, location: str | None = None) -> None:
        super().__init__(message, status=status)
        self.location = location


class CrmFault(CrmLoadError):
    """CRM answered with a SOAP fault. ``code`` is CRM 4.0's hex string, e.g. ``"0x80040217"``.

    ``details`` holds a 2011+ fault's ``ErrorDetails`` (empty for CRM 4.0); an ``InnerFault`` becomes the
    error's ``__cause__``.
    """

    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fault_type: str | None = None,
        status: int | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code if code is not None else self.default_code
        self.fault_type = fault_type
        self.status = status
        self.details: dict[str, object] = dict(details) if details else {}


class RecordNotFound(CrmFault):
    """0x80040217 ObjectDoesNotExist: Update, Delete or Retrieve of a record that is not there."""

    default_code = "0x80040217"


class DuplicateRecord(CrmFault):
    """0x80040237: a Create with a primary key that already exists."""

    default_code = "0x80040237"


class PrivilegeDenied(CrmFault):
    """0x80040220: the calling user lacks a privilege."""

    default_code = "0x80040220"


class InvalidArgument(CrmFault):
    """0x80040203 and relatives: CRM rejected an attribute, a type or a value."""

    default_code = "0x80040203"


class RequiredFieldMissing(CrmFault):
    """0x80040200: a required attribute is missing."""

    default_code = "0x80040200"


class BatchTooLargeError(CrmFault):
    """An ExecuteMultiple over the server's limit; refused before any item ran, so always safe to resend.

    ``max_batch_size`` is the limit the fault's ``ErrorDetails["MaxBatchSize"]`` gave, when it gave one.
    """

    def __init__(self, message: str, *, max_batch_size: int | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.max_batch_size = max_batch_size


class ItemNotRunError(CrmLoadError):
    """A batch item the server never ran: an earlier item faulted and the batch did not continue on error.

    Never applied, so it is as safe to resend as a request that was never sent.
    """

    phase = "connect"


class RetryExhaustedError(CrmLoadError):
    """Retries gave up. ``last`` is the final cause, ``attempts`` how many were made."""

    def __init__(self, message: str, *, last: BaseException | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.last = last
        self.attempts = attempts


class RunLevelError(CrmLoadError):
    """Something about the whole run is wrong (URL, TLS, credentials, organisation, entity, privilege).

    Nothing was applied for it and no row was rejected for it: the rows stay pending, and ``--resume`` sends
    them once the cause is fixed.
    """


class PreflightError(RunLevelError):
    """The start-up check (WhoAmI, then the entity) failed before any row was read.

    ``cause`` is one of "unreachable", "tls", "authentication", "organisation", "entity", "endpoint", "busy"
    or "other"; the chained ``__cause__`` is the error the check met.
    """

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class CircuitOpenError(RunLevelError):
    """The circuit breaker stopped the run: ``count`` sent rows in a row failed with one run-level fault.

    ``code`` is the CRM fault code; ``fault`` the message they shared. Those rows stay pending.
    """

    def __init__(self, message: str, *, code: str | None, count: int, fault: str) -> None:
        super().__init__(message)
        self.code = code
        self.count = count
        self.fault = fault


_FAULTS_BY_CODE: dict[str, type[CrmFault]] = {
    "0x80040217": RecordNotFound,
    "0x80040237": DuplicateRecord,
    "0x80040220": PrivilegeDenied,
    "0x80040203": InvalidArgument,
    "0x80040200": RequiredFieldMissing,
    # Other codes CRM uses for bad attribute names, types and values.
    "0x80040216": CrmFault,
    "0x80044331": InvalidArgument,
    "0x8004431a": InvalidArgument,
    "0x80040375": InvalidArgument,
}

#: The service-protection fault codes and the limit each names (-2147015902, -2147015903, -2147015898).
SERVICE_PROTECTION_FACETS = {
    "0x80072322": "requests",
    "0x80072321": "execution_time",
    "0x80072326": "concurrency",
}

#: Service-protection and sandbox codes that mean "busy, come back later".
BUSY_CODES = frozenset({*SERVICE_PROTECTION_FACETS, "0x8004418d"})

#: Codes that mean "the caller, not the row": privilege denied (CRM 4.0 also answers a wrong organisation or
#: a missing token with it), the access check "does not have CreateAccess right(s)", an expired ticket.
RUN_LEVEL_CODES = frozenset({"0x80040220", "0x80048306", "0x8004a101"})

#: Invalid-argument messages about the target, not the value: CRM's own wording, 4.0 to Dataverse.
_UNKNOWN_TARGET = re.compile(
    r"was not found in the MetadataCache|doesn't contain attribute|Could not find (?:an? )?entity",
    re.IGNORECASE,
)


def is_run_level(exc: BaseException) -> bool:
    """True when ``exc`` is a CRM fault that fails every row alike, whatever the row holds.

    A run-level code, or an unknown entity or attribute (which CRM files under invalid-argument codes, so
    only the wording tells). A bad value, a missing required field or a duplicate key is about the row.
    """
    if not isinstance(exc, CrmFault):
        return False
    if (exc.code or "").lower() in RUN_LEVEL_CODES:
        return True
    return bool(_UNKNOWN_TARGET.search(exc.message))


def fault_for_code(code: str | None) -> type[CrmFault]:
    """Return the CrmFault subclass for a CRM hex code (case-insensitive), or CrmFault itself."""
    if code is None:
        return CrmFault
    return _FAULTS_BY_CODE.get(code.lower(), CrmFault)
