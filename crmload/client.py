"""CrmClient: one thread-safe client per process, for CRM 4.0 (CrmService.asmx) and the Organization service.

An operation is dialect codec + limiter + retry + transport; the dialect (``soap.dialect``) is picked from
the URL and is all that differs between endpoints. Batches are in ``_batch.BatchOps``.

Each attempt waits for the call limiter, posts the envelope over the pooled keep-alive transport (whose every
new socket passes the connect guard), and turns the answer into a value or a typed crmload error. tenacity
decides what is retried, by phase: never-sent errors always, maybe-applied errors only for idempotent
operations (Update, Delete, Retrieve*, Fetch, WhoAmI, and Create with a client-chosen ``id=``).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from crmload._batch import BatchOps, BatchStats
from crmload._client_stats import CallStats, CallTrace
from crmload._errmap import FOREIGN_ERRORS, classify
from crmload._server_budget import Pass, ServerBudget
from crmload.budget import DEFAULT_PORT_BUDGET, PortBudget
from crmload.budgets import BudgetKey, BudgetStore, open_store
from crmload.errors import (
    ConfigError,
    CrmLoadError,
    DuplicateRecord,
    ProtocolError,
    RecordNotFound,
    ResponseLostError,
    ServerBusyError,
    ServiceProtectionError,
)
from crmload.metadata import Metadata, load_metadata
from crmload.preflight import PreflightResult, check
from crmload.retry import DEFAULT_RETRY_POLICY, RetryPolicy, RetryStats, retrying
from crmload.server_limits import DEFAULT_SERVER_LIMITS, ServerLimits
from crmload.soap.codec2007 import Page, WhoAmI
from crmload.soap.dialect import Capabilities, build_dialect
from crmload.soap.faults import not_soap_answer
from crmload.throttle import CallLimiter, ConnectGuard, RateLimit
from crmload.transport import PoolLimits, Timeout, Transport
from crmload.types import as_uuid

__all__ = ["CrmClient"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _rate_limit(rate: RateLimit | float | str | None, budget: PortBudget) -> RateLimit:
    """None means the port budget (safe even with no reuse); a number or a string sets it."""
    if rate is None:
        return RateLimit(per_second=budget.per_second)
    if isinstance(rate, RateLimit):
        return rate
    if isinstance(rate, str):
        return RateLimit.parse(rate)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ConfigError(f"rate must be a RateLimit, a number, 'auto' or 'unlimited', not {rate!r}")
    return RateLimit(per_second=float(rate))


def _check_options(  # noqa: PLR0917 - one check per constructor argument
    workers: object,
    budget: object,
    retry: object,
    timeout: object,
    limits: object,
    metadata: object,
    verify: object,
    proxies: object,
    auth: object,
) -> None:
    """Refuse option values of the wrong type up front, as ConfigError, before they fail deep inside."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(verify, (bool, str)):
        raise ConfigError(f"verify must be True, False or a CA bundle path, not {type(verify).__name__}")
    if auth is not None and not callable(auth) and not (isinstance(auth, tuple) and len(auth) == 2):
        raise ConfigError(f"auth must be an auth object (crmload.auth) or None, not {type(auth).__name__}")
    if proxies is not None and not isinstance(proxies, Mapping):
        raise ConfigError(f"proxies must be a mapping of scheme to proxy URL, not {type(proxies).__name__}")
    expected = (
        ("budget", budget, PortBudget),
        ("retry", retry, RetryPolicy),
        ("timeout", timeout, Timeout),
        ("limits", limits, PoolLimits),
        ("metadata", metadata, Metadata),
    )
    for name, value, kind in expected:
        if value is not None and not isinstance(value, kind):
            raise ConfigError(f"{name} must be a {kind.__name__} or None, not {type(value).__name__}")


def _attrs(attrs: object) -> Mapping[str, object]:
    if not isinstance(attrs, Mapping):
        raise ConfigError(f"attrs must be a mapping of attribute name to value, not {type(attrs).__name__}")
    return attrs


class CrmClient(BatchOps):
    """Create, update, delete and read CRM records from many threads without exhausting local ports.

    Args:
        url: the endpoint: ``http://crm/MSCRMServices/2007/CrmService.asmx`` (CRM 4.0),
            ``…/XRMServices/2011/Organization.svc/web`` (the Organization service), or an organisation's
            root URL such as ``https://contoso.crm4.dynamics.com/`` (the Organization service, path appended).
        org: the organisation's unique name; required for CRM 4.0, taken from the URL otherwise.
        endpoint: ``"2007"`` or ``"2011"`` overrides what the URL says (see ``soap.dialect``).
        workers: threads that will share this client; sizes the connection pool.
        rate: calls per second: a ``RateLimit``, a number, ``"auto"`` or ``"unlimited"``. None (default) means
            the port budget's rate, about 16/s, which is safe even if keep-alive breaks.
        budget: the host's port budget for the always-on new-connection guard. None means the 2009 Windows
            defaults (3,976 ports, 240 s TIME_WAIT: about 16.5 new connections/s), the product's promise for
            any client; pass ``PortBudget.from_host()`` to use this host's real settings.
        retry: the retry policy (``DEFAULT_RETRY_POLICY``).
        timeout: connect and read timeouts (connect 10 s, read 120 s).
        auth: HTTP authentication; see ``Transport`` for how it plugs in. None means none.
        verify: TLS verification (on) or a CA bundle path.
        proxies: explicit proxies; HTTP(S)_PROXY / NO_PROXY are honoured too, read once at start.
        limits: connection pool shape (``PoolLimits``).
        metadata: entity metadata used to type null values (``load_metadata()`` by default).
        clock, sleep: injected time for the limiter, the guard and retry waits.
        budget_store: where the call limiter keeps its rate and Retry-After pause: None (this process), a
            ``crmload.budgets`` store, or a URL such as ``redis://host:6379/0`` shared by every process using
            this endpoint as the same user (see ``crmload.budgets``). The connection guard stays per host.
        server_limits: the server's service-protection limits (``crmload.server_limits``): a
            ``ServerLimits``, text like ``"200/4/8/10"``, or ``"off"``. None means the endpoint's own: the
            documented defaults (6000 requests, 1200 s execution, 52 concurrent per 300 s) on the Organization
            service, none on CRM 4.0. Every call of this client (all its threads) stays under them; a
            service-protection fault pauses them all for its Retry-After and lowers a limit it names.
        identity: the name of the user this client calls as, for the budget key (default: ``auth.user``);
            ``crmload.identities.IdentityPool`` names each of its identities.

    Example:
        >>> with CrmClient(url, org="Contoso", workers=8) as crm:        # doctest: +SKIP
        ...     account_id = crm.create("account", {"name": "Contoso"})
        ...     crm.update("account", account_id, {"telephone1": "555-0100"})
        ...     print(crm.stats()["reuse_ratio"])
    """

    def __init__(
        self,
        url: str,
        *,
        org: str | None = None,
        endpoint: str | None = None,
        workers: int = 1,
        rate: RateLimit | float | str | None = None,
        budget: PortBudget | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | None = None,
        auth: Any = None,
        verify: bool | str = True,
        proxies: Mapping[str, str] | None = None,
        limits: PoolLimits | None = None,
        metadata: Metadata | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        budget_store: BudgetStore | str | None = None,
        server_limits: ServerLimits | str | None = None,
        identity: str | None = None,
    ) -> None:
        _check_options(workers, budget, retry, timeout, limits, metadata, verify, proxies, auth)
        self._budget = budget if budget is not None else DEFAULT_PORT_BUDGET
        self._metadata = metadata if metadata is not None else load_metadata()
        self._dialect = build_dialect(url, endpoint=endpoint, org=org, null_property=self._null_property)
        self._codec = self._dialect.codec
        self._batch_limit = self._dialect.capabilities.max_batch  # halved by lost answers, regrows on answers
        self._batch_ceiling = self._batch_limit  # lowered for good by MaxBatchSize faults
        self._batch_stats = BatchStats()
        self._headers: dict[str, dict[str, str]] = {}  # per operation, built once
        limit = _rate_limit(rate, self._budget)
        store = budget_store if budget_store is not None and not isinstance(budget_store, str) else None
        store = store or open_store(budget_store if isinstance(budget_store, str) else None)
        # A pool larger than the default burst should not queue on its own warm-up.
        self._guard = ConnectGuard(self._budget, clock=clock, sleep=sleep, burst=max(8, workers))
        self._policy = retry if retry is not None else DEFAULT_RETRY_POLICY
        self._clock = clock
        self._sleep = sleep
        self._retry_stats = RetryStats()
        self._stats = CallStats()
        self._transport = Transport(
            self._dialect.url,
            workers=workers,
            timeout=timeout,
            guard=self._guard,
            auth=auth,
            verify=verify,
            proxies=proxies,
            limits=limits,
            clock=clock,
        )
        # After the transport, which checks the URL: the budget is keyed by it.
        who = identity if identity is not None else getattr(auth, "user", "")
        key = BudgetKey(_strip_credentials(self._dialect.url), str(who or ""))
        self._limiter = CallLimiter(limit, self._budget, clock=clock, sleep=sleep, store=store, key=key)
        self._server = ServerBudget(
            _server_limits(server_limits, self._dialect.name), workers=workers, clock=clock, sleep=sleep
        )

    def _null_property(self, entity: str, attribute: str) -> str | None:
        # CRM checks a null's property type against the attribute's, so a None needs its declared type.
        if not self._metadata.has(entity):
            return None
        crm_type = self._metadata.entity(entity).type_of(attribute)
        return None if crm_type is None else crm_type + "Property"

    @property
    def url(self) -> str:
        """The endpoint URL, without any user or password it carried."""
        return _strip_credentials(self._transport.url)

    @property
    def org(self) -> str:
        """The organisation's unique name."""
        return self._dialect.org

    @property
    def endpoint(self) -> str:
        """The dialect this client speaks: ``"2007"`` or ``"2011"``."""
        return self._dialect.name

    @property
    def capabilities(self) -> Capabilities:
        """What the endpoint can do: largest batch, upsert, alternate keys."""
        return self._dialect.capabilities

    @property
    def server_limits(self) -> ServerLimits | None:
        """The service-protection limits calls are kept under now (lowered by faults); None when off."""
        return self._server.limits

    @property
    def batch_limit(self) -> int:
        """The largest batch sent now: the endpoint's, lowered by MaxBatchSize faults (for good) and halved
        by lost answers (doubling back on each answered batch)."""
        return self._batch_limit

    def __repr__(self) -> str:
        return f"CrmClient({self.url!r}, org={self.org!r})"

    def __enter__(self) -> CrmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections and leave a shared budget. Idempotent."""
        self._transport.close()
        self._limiter.close()

    # --- operations -----------------------------------------------------------------------------------------

    def create(
        self, entity: str, attrs: Mapping[str, object], *, id: uuid.UUID | str | None = None
    ) -> uuid.UUID:
        """Create a record and return its id.

        With ``id=`` the create is idempotent: if an attempt lost its answer and the retry then hits
        DuplicateRecord, a Retrieve confirms that the first attempt landed and the id is returned. Without
        ``id=`` a lost answer raises ``ResponseLostError`` (maybe applied) and is never re-sent.
        """
        key = as_uuid(id) if id is not None else None
        body = self._codec.build_create(entity, _attrs(attrs), id=key)
        if key is None:
            return self._call("Create", body, self._codec.parse_create, idempotent=False)
        return self._keyed_create(entity, key, body)

    def update(self, entity: str, id: uuid.UUID | str, attrs: Mapping[str, object]) -> None:
        """Update the given attributes of one record."""
        body = self._codec.build_update(entity, as_uuid(id), _attrs(attrs))
        self._call("Update", body, self._codec.parse_empty, idempotent=True)

    def delete(self, entity: str, id: uuid.UUID | str) -> None:
        """Delete one record."""
        body = self._codec.build_delete(entity, as_uuid(id))
        self._call("Delete", body, self._codec.parse_empty, idempotent=True)

    def retrieve(
        self, entity: str, id: uuid.UUID | str, columns: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Return one record's attributes as typed values; ``columns`` None means all."""
        body = self._codec.build_retrieve(entity, as_uuid(id), columns)
        return self._call("Retrieve", body, self._codec.parse_retrieve, idempotent=True)

    def retrieve_multiple(
        self,
        entity: str,
        where: Mapping[str, object] | None = None,
        columns: Sequence[str] | None = None,
        page_size: int = 5000,
    ) -> Iterator[dict[str, Any]]:
        """Yield every matching record, page by page, following PagingCookie until MoreRecords is false.

        Values are typed as ``retrieve`` types them: the query goes through Execute with
        ``ReturnDynamicEntities``, whose answer states each property's type.
        """
        if where is not None and not isinstance(where, Mapping):
            raise ConfigError(f"where must be a mapping of attribute to value, not {type(where).__name__}")
        if columns is not None and not isinstance(columns, Sequence):
            raise ConfigError(f"columns must be a list of attribute names, not {type(columns).__name__}")
        for page in self.retrieve_pages(entity, where, columns, page_size):
            yield from page.records

    def retrieve_pages(
        self,
        entity: str,
        where: Mapping[str, object] | None = None,
        columns: Sequence[str] | None = None,
        page_size: int = 5000,
        *,
        page_number: int = 1,
        paging_cookie: str | None = None,
        fetch_xml: str | None = None,
    ) -> Iterator[Page]:
        """Yield whole pages (records, MoreRecords, PagingCookie) from ``page_number`` and ``paging_cookie``.

        For readers that must know where a page ends (``crmload.read.export`` saves the cookie after each one,
        so an interrupted export resumes at the next page). ``fetch_xml`` pages a FetchXML query instead
        (Organization service: a FetchExpression with ``page``/``count``/``paging-cookie`` set per page).
        """
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise ConfigError(f"page_size must be an int, not {type(page_size).__name__}")
        codec: Any = self._codec
        if fetch_xml is not None and hasattr(codec, "parse_fetch"):  # CRM 4.0's Fetch answers untyped text
            raise ConfigError(
                "paged FetchXML needs the Organization service; on CRM 4.0 use columns and where"
            )
        cookie = paging_cookie
        while True:
            if fetch_xml is not None:
                body = codec.build_fetch(
                    fetch_xml, page_number=page_number, page_size=page_size, paging_cookie=cookie
                )
                action = "RetrieveMultiple"
            else:
                body = self._codec.build_retrieve_multiple(
                    entity, where, columns, page_size, page_number, cookie, dynamic=True
                )
                action = "Execute"
            page = self._call(
                "RetrieveMultiple", body, self._codec.parse_retrieve_multiple, idempotent=True, action=action
            )
            yield page
            if not page.more_records or not page.records:
                return
            page_number, cookie = page_number + 1, page.paging_cookie

    def fetch(self, fetch_xml: str) -> str:
        """Run a FetchXML query and return the resultset XML."""
        if not isinstance(fetch_xml, str):
            raise ConfigError(f"fetch_xml must be a str, not {type(fetch_xml).__name__}")
        codec: Any = self._codec
        if not hasattr(codec, "parse_fetch"):
            raise ConfigError("fetch returns CRM 4.0's resultset XML; use retrieve_multiple on this endpoint")
        return self._call("Fetch", codec.build_fetch(fetch_xml), codec.parse_fetch, idempotent=True)  # type: ignore[no-any-return]

    def who_am_i(self, *, retry: RetryPolicy | None = None) -> WhoAmI:
        """Return the calling user's, business unit's and organisation's ids (``retry``: another policy)."""
        body = self._codec.build_who_am_i()
        return self._call("WhoAmI", body, self._codec.parse_who_am_i, idempotent=True, policy=retry)

    def preflight(self, entity: str | None = None) -> PreflightResult:
        """Check URL, TLS, credentials, organisation and entity in two calls (see ``crmload.preflight``).

        Raises ``PreflightError`` naming the cause. ``import`` runs it before reading its input.
        """
        key = entity.lower() if entity else None
        pk = self._metadata.entity(key).primary_key if key and self._metadata.has(key) else None
        return check(self, key, primary_key=pk)

    def execute_raw(self, request_xml: str) -> bytes:
        """Send ``<Request xsi:type="...">`` inside Execute and return the raw response envelope.

        Not retried after send: an arbitrary request may not be idempotent.
        """
        if not isinstance(request_xml, str):
            raise ConfigError(f"request_xml must be a str, not {type(request_xml).__name__}")
        body = self._codec.build_execute(request_xml)
        return self._call("Execute", body, self._check_raw, idempotent=False)

    # --- stats ----------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Calls, sockets opened, reuse ratio, retries by cause, limiter and guard waits, latency, errors."""
        out = self._stats.snapshot()
        wire = self._transport.stats()
        limiter = self._limiter.stats()
        sockets = wire["sockets_opened"]
        out.update(
            requests=wire["requests"],
            sockets_opened=sockets,
            connect_attempts=wire["connect_attempts"],
            reuse_ratio=(wire["requests"] / sockets) if sockets else None,
            bytes_sent=wire["bytes_sent"],
            bytes_received=wire["bytes_received"],
            retries=self._retry_stats.total,
            retries_by_cause=self._retry_stats.snapshot(),
            retries_gave_up=self._retry_stats.gave_up,
            limiter_mode=limiter["mode"],
            limiter_waits=limiter["waits"],
            limiter_wait_s=limiter["wait_s"],
            limiter_wait_wall_s=limiter["wait_wall_s"],
            retry_after_pauses=limiter["pauses"],
            retry_after_pause_s=limiter["pause_s"],
            current_rate=limiter["current_rate"],
            budget_store=limiter["budget_store"],
            guard_waits=wire["guard_waits"],
            guard_wait_s=wire["guard_wait_s"],
            guard_rate=self._guard.rate,
            guard_burst=self._guard.burst,
            connect_window_s=wire["connect_window_s"],
            port_budget_per_s=self._budget.per_second,
        )
        out.update(self._batch_stats.snapshot())
        out["server_budget"] = self._server.stats()
        return out

    def call_trace(self) -> CallTrace:
        """The calling thread's running totals: requests, answered server time, busy and lost answers.

        Subtract two readings taken around a call to see how it went on the wire (the loader's ``auto``
        batch size does); cheap, and no lock.
        """
        return self._stats.trace()

    # --- the operation pipeline -----------------------------------------------------------------------------

    def _call(
        self,
        op: str,
        body: bytes,
        parse: Callable[[bytes], T],
        *,
        idempotent: bool,
        attempt: Callable[[bytes, Mapping[str, str], Callable[[bytes], T]], T] | None = None,
        action: str | None = None,
        policy: RetryPolicy | None = None,
        items: int = 1,
    ) -> T:
        """Run one operation with retries; count it, and the error it ends with.

        ``action`` names the SOAPAction when the envelope is not the op's own (RetrieveMultiple via Execute);
        ``items`` is how many records the request carries (the server budget's execution-time estimate).
        """
        self._stats.call(op)
        action = action or op
        headers = self._headers.get(action)
        if headers is None:
            headers = self._headers[action] = {
                "Content-Type": self._dialect.content_type,
                "SOAPAction": self._codec.soap_action(action),
            }
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s request envelope: %s", op, body.decode("utf-8", "replace"))
        run: Callable[[bytes, Mapping[str, str], Callable[[bytes], T]], T] = attempt or (
            self._attempt if items == 1 else functools.partial(self._attempt, items=items)
        )
        try:
            # Most calls succeed at once; building and driving tenacity for them cost ~40 us of CPU a call.
            return run(body, headers, parse)
        except CrmLoadError as exc:
            first = exc
        retryer = retrying(
            policy or self._policy,
            idempotent=idempotent,
            sleep=self._sleep,
            clock=self._clock,
            stats=self._retry_stats,
        )
        try:
            # tenacity still decides everything: it sees the first failure as its own first attempt (replayed,
            # not re-sent) and applies the same classification, waits and limits as it would have.
            return retryer(_replay_first(first, run), body, headers, parse)
        except CrmLoadError as exc:
            self._stats.error(exc)
            raise

    def _attempt(
        self, body: bytes, headers: Mapping[str, str], parse: Callable[[bytes], T], items: int = 1
    ) -> T:
        """One attempt: server budget, limiter, POST, fault check, parse. Raises typed crmload errors only."""
        server = self._server if self._server.active else None
        ticket = server.enter(items) if server is not None else None
        self._limiter.acquire()
        started = self._clock()
        try:
            reply = self._transport.post(body, headers)
        except ResponseLostError:
            self._stats.attempt(None)
            self._leave(ticket, None, ran=True)  # maybe it ran: count the estimate
            raise
        except BaseException:
            self._leave(ticket, None, ran=False)  # never sent
            raise
        latency = self._clock() - started
        self._stats.attempt(latency)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("HTTP %d response envelope: %s", reply.status, reply.body.decode("utf-8", "replace"))
        error = (
            self._dialect.parse_fault(reply.status, reply.body, reply.headers)
            if reply.status != 200
            else None
        )
        busy = isinstance(error, ServerBusyError)
        self._leave(ticket, latency, ran=not busy)
        if server is not None:
            server.dop_hint(reply.headers.get("x-ms-dop-hint"))
        if isinstance(error, ServiceProtectionError):
            self._server.on_throttle(error.facet, str(error), error.retry_after)
            # Every worker of this identity waits out the penalty; when the budget holds the calls, it (not a
            # halved call rate) is what keeps them under the limit from now on.
            self._limiter.on_busy(error.retry_after, adapt=server is None)
            self._stats.busy()
        elif isinstance(error, ServerBusyError):
            self._limiter.on_busy(error.retry_after)
            self._stats.busy()
        if error is not None:
            raise error
        try:
            result = parse(reply.body)
        except ProtocolError:
            # A 200 login page is no CRM answer at all: never applied (not merely unreadable).
            unprocessed = not_soap_answer(reply.status, reply.body, reply.headers)
            if unprocessed is None:
                raise
            raise unprocessed from None
        except FOREIGN_ERRORS as exc:  # the codec maps its own errors; this is the net under it
            raise classify(exc, "parse response") from exc
        # Per record: a batch of 500 is slower than one of 5, and that is no sign of strain.
        self._limiter.on_success(latency / items)
        return result

    def _availability(self) -> tuple[float, float, float]:
        """How free this client is now, smaller is freer: (paused, held by its server budget, in flight)."""
        paused = 1.0 if self._limiter.paused_for() > 0 else 0.0
        held, in_flight = self._server.load()
        return paused, held, in_flight

    def _leave(self, ticket: Pass | None, latency: float | None, *, ran: bool) -> None:
        if ticket is not None:
            self._server.leave(ticket, latency, ran=ran)

    def _keyed_create(self, entity: str, key: uuid.UUID, body: bytes) -> uuid.UUID:
        """Create with a client-chosen id, retried even after a lost answer, never duplicated.

        A DuplicateRecord on the very first answered attempt means the record existed before: it is raised.
        After an attempt whose answer was lost, it means that attempt landed: a Retrieve confirms, and the id
        is returned.
        """
        lost = False

        def attempt(
            body: bytes, headers: Mapping[str, str], parse: Callable[[bytes], uuid.UUID]
        ) -> uuid.UUID:
            nonlocal lost
            try:
                return self._attempt(body, headers, parse)
            except ResponseLostError:
                lost = True
                raise
            except DuplicateRecord as dup:
                if not lost:
                    raise
                return self._confirm_created(entity, key, dup)

        return self._call("Create", body, self._codec.parse_create, idempotent=True, attempt=attempt)

    def _confirm_created(self, entity: str, key: uuid.UUID, dup: DuplicateRecord) -> uuid.UUID:
        """Retrieve the record a lost attempt may have created; return its id, or re-raise the duplicate."""
        try:
            self.retrieve(entity, key, columns=[f"{entity}id"])
        except RecordNotFound:
            raise dup from None
        self._stats.confirmed_duplicate()
        log.info("keyed create of %s %s: earlier attempt landed (confirmed by Retrieve)", entity, key)
        return key

    def _check_raw(self, body: bytes) -> bytes:
        self._codec.parse_empty(body)
        return body


def _server_limits(value: ServerLimits | str | None, dialect: str) -> ServerLimits | None:
    """None: the endpoint's own (the documented defaults on the Organization service, none on CRM 4.0)."""
    if value is None:
        return DEFAULT_SERVER_LIMITS if dialect == "2011" else None
    if isinstance(value, ServerLimits):
        return value
    if isinstance(value, str):
        return ServerLimits.parse(value)
    raise ConfigError(f"server_limits must be a ServerLimits, text like '200/4/8/10' or 'off', not {value!r}")


def _replay_first(first: CrmLoadError, run: Callable[..., T]) -> Callable[..., T]:
    """Return ``run``, except that its first call raises ``first`` (an attempt already made) without I/O."""
    pending: list[CrmLoadError] = [first]

    def attempt(*args: Any) -> T:
        if pending:
            raise pending.pop()
        return run(*args)

    return attempt


def _strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
