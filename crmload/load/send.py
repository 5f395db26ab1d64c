"""One row, one mode: the CRM calls a row needs, and what an error means for that row.

Kept apart from the engine so the rules read in one place:
- a ``CrmFault`` (bad value, privilege, duplicate of an unkeyed row) rejects the row, phase ``send``;
- an ``EncodingError`` (a value XML cannot carry) rejects it, phase ``map``;
- a lost answer to an unkeyed Create (not retried, since it may have landed) puts it ``in_doubt``;
- anything that will fail every row alike (credentials refused, retries exhausted on the connection, an answer
  CRM never processed: a redirect, a 404, a login page; a TLS failure) is fatal: the run stops and the row
  stays pending for ``--resume``. ``proves_not_applied`` tells the engine when such a row's send attempt may
  be forgotten, so that a resume sends it again instead of putting it in doubt.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from crmload.errors import (
    AuthenticationError,
    ConfigError,
    CrmFault,
    DuplicateRecord,
    EncodingError,
    InputError,
    NotAppliedError,
    ProtocolError,
    RecordNotFound,
    ResponseLostError,
    RetryExhaustedError,
    TlsError,
)
from crmload.load.mapping import Mapped

__all__ = ["classify", "proves_not_applied", "send_one"]


def send_one(client: Any, entity: str, mode: str, rec: Mapped) -> tuple[UUID | None, str]:  # noqa: PLR0911
    """Make the calls ``mode`` needs for ``rec``; return ``(crm id, outcome)``.

    Outcomes: created, updated, deleted, already_present (create of a keyed row that exists),
    already_absent (delete of a row that is gone).
    """
    # A null on Create is the same as no value, and CRM 4.0 needs no typed IsNull for an absent attribute.
    fresh = {k: v for k, v in rec.attrs.items() if v is not None}
    if mode == "create":
        try:
            return client.create(entity, fresh, id=rec.id), "created"
        except DuplicateRecord:
            if rec.id is None:
                raise
            return rec.id, "already_present"
    assert rec.id is not None
    if mode == "update":
        client.update(entity, rec.id, rec.attrs)
        return rec.id, "updated"
    if mode == "upsert":
        try:
            return client.create(entity, fresh, id=rec.id), "created"
        except DuplicateRecord:
            client.update(entity, rec.id, rec.attrs)
            return rec.id, "updated"
    if mode == "delete":
        try:
            client.delete(entity, rec.id)
        except RecordNotFound:
            return rec.id, "already_absent"
        return rec.id, "deleted"
    raise ConfigError(f"unknown mode {mode!r}")


def _cause(exc: BaseException) -> BaseException:
    return exc.last if isinstance(exc, RetryExhaustedError) and exc.last is not None else exc


def classify(exc: BaseException, *, keyed: bool, mode: str) -> tuple[str, str]:  # noqa: PLR0911
    """Return ``(verdict, phase)`` for an error met sending one row; verdict is reject, in_doubt or fatal."""
    cause = _cause(exc)
    unkeyed_create = not keyed and mode in ("create", "upsert")
    if isinstance(cause, (EncodingError, InputError)):
        return "reject", "map"
    if isinstance(cause, CrmFault):
        return "reject", "send"
    if isinstance(cause, ResponseLostError) and unkeyed_create:
        return "in_doubt", "send"
    if isinstance(cause, NotAppliedError):
        return "fatal", "send"
    if isinstance(cause, TlsError):
        return "fatal", "connect"
    if isinstance(cause, ProtocolError):
        # One malformed answer is about one row; an unkeyed Create may still have landed.
        return ("in_doubt" if unkeyed_create else "reject"), "send"
    if isinstance(cause, AuthenticationError | ConfigError):
        return "fatal", "send"
    return "fatal", getattr(cause, "phase", "send")


def proves_not_applied(exc: BaseException) -> bool:
    """True when the error that ended a row's send proves CRM applied nothing for it.

    Only a lost answer, or an answer that is unreadable without proving anything, may hide a landed Create.
    Retries of an unkeyed Create stop at the first such error, so a ``RetryExhaustedError`` there means every
    attempt failed before CRM acted (connect, busy).
    """
    cause = _cause(exc)
    if isinstance(cause, ResponseLostError):
        return False
    return isinstance(cause, NotAppliedError) or not isinstance(cause, ProtocolError)
