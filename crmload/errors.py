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
    │   └── ResponseLostError        sent, answer lost: maybe applied; retry only if idempotent
    ├── AuthenticationError          credentials refused (HTTP 401 after a full handshake); never retried
    ├── ServerBusyError              HTTP 503/429 or a throttling fault; retry after ``retry_after``
    ├── ProtocolError                the server answered something that is not CRM's protocol
    ├── CrmFault                     CRM answered with a SOAP fault; ``code`` is the hex string ("0x80040217")
    │   ├── RecordNotFound           0x80040217 ObjectDoesNotExist
    │   ├── DuplicateRecord          0x80040237 DuplicateRecord
    │   ├── PrivilegeDenied          0x80040220 PrivilegeDenied
    │   ├── InvalidArgument          0x80040203 InvalidArgument (and other invalid-argument codes)
    │   ├── RequiredFieldMissing     0x80040200
    │   └── BatchTooLargeError       ExecuteMultiple over MaxBatchSize; nothing ran: split and resend
    ├── ItemNotRunError              a batch item the server never ran (an earlier item stopped the batch)
    └── RetryExhaustedError          retries gave up; ``last`` holds the final cause, ``attempts`` the count

Args common to all: ``message``. Structured fields are keyword-only and default to ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AuthenticationError",
    "BadValueError",
    "BatchTooLargeError",
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
    "PortExhaustedError",
    "PrivilegeDenied",
    "ProtocolError",
    "RecordNotFound",
    "RequiredFieldMissing",
    "ResponseLostError",
    "RetryExhaustedError",
    "ServerBusyError",
    "SourceError",
    "TransportError",
    "fault_for_code",
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


class ResponseLostError(TransportError):
    """The request was sent but no answer came back, so it may have been applied.

    Retry only idempotent operations. ``maybe_applied`` is always True; it is a field so that callers and the
    journal can record the fact without an isinstance check.
    """

    maybe_applied = True


class AuthenticationError(CrmLoadError):
    """The server refused the credentials. Never retried: a retry storm only locks the account."""


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


class ProtocolError(CrmLoadError):
    """The server answered something that is not CRM's protocol (bad XML, unexpected status)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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

#: Service-protection and sandbox codes that mean "busy, come back later".
BUSY_CODES = frozenset({"0x80072322", "0x80072321", "0x80072326", "0x8004418d"})


def fault_for_code(code: str | None) -> type[CrmFault]:
    """Return the CrmFault subclass for a CRM hex code (case-insensitive), or CrmFault itself."""
    if code is None:
        return CrmFault
    return _FAULTS_BY_CODE.get(code.lower(), CrmFault)
