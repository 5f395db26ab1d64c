"""``MockCrm``: a real HTTP/1.1 keep-alive server for the CRM 4.0 2007 endpoint and the Organization service
(``/XRMServices/2011/Organization.svc/web``, see ``org_protocol``) over one store, one thread per connection.

Why threads over raw sockets: the stdlib ``http.server`` speaks HTTP/1.0 by default and writes unbuffered,
which
with Nagle costs ~40 ms per response. Here each reply is one ``sendall`` of a prebuilt buffer on a TCP_NODELAY
socket, and lxml releases the GIL while parsing. See ``benchmarks/mock_throughput.py`` for the measured rate.

Example::

    with MockCrm(org="Contoso") as crm:
        post_soap(crm.url, ...)
        assert crm.stats()["connections_accepted"] == 1
        crm.records("account")
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmload.metadata import Metadata, load_metadata
from crmload.mock.admin import handle_admin
from crmload.mock.authority import DEFAULT_TOKEN_LIFETIME_S, TokenAuthority
from crmload.mock.bearer import BearerAuth
from crmload.mock.envelope import CODE_AUTH, CODE_UNEXPECTED, SoapFault
from crmload.mock.faults import FaultInjector, FaultPlan, mutable_attribute, mutated
from crmload.mock.http import (
    GZIP_MIN_BYTES,
    BadRequest,
    Request,
    TooLarge,
    accepts_gzip,
    drain,
    read_request,
    response_bytes,
)
from crmload.mock.org_protocol import build_org_protocol, org_soap_version
from crmload.mock.protection import DEFAULT_SERVICE_LIMITS, Protection, ServiceLimits, Throttled, Ticket
from crmload.mock.protection import content_type as org_content_type
from crmload.mock.protection import fault_answer as throttle_answer
from crmload.mock.protocol import Protocol, SoapReply
from crmload.mock.stats import Stats
from crmload.mock.store import Store
from crmload.soap import ns

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ConnState", "MockCrm"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
#: Oversized bodies up to this size are read and dropped, so the client gets the fault instead of a reset.
_DRAIN_LIMIT = 256 * 1024 * 1024
_BUSY_BODY = b"<html><body><h1>Service Unavailable</h1></body></html>"
#: FaultPlan.privilege_denied_after's answer: CRM's wording, the same for every row.
_DENIED = SoapFault(CODE_AUTH, "Principal user is missing prvCreate privilege.", kind="privilege_denied")


@dataclass(slots=True)
class ConnState:
    """Per-connection state: the seam for connection-level auth (NTLM keeps its handshake in ``auth``)."""

    id: int
    peer: tuple[str, int]
    requests: int = 0
    soap_requests: int = 0
    responses: int = 0
    auth: Any = None
    over_limit: bool = False
    created: float = field(default_factory=time.monotonic)


class MockCrm:
    """A mock CRM 4.0 organisation on a real socket. See the module docstring and docs/INTERNALS.md "Mock".

    Args:
        org: the OrganizationName the CrmAuthenticationToken must carry (compared case-insensitively).
        host, port: where to listen; port 0 picks a free port.
        faults: the fault plan (default: none).
        metadata: a ``Metadata``, or a JSON/TOML path of extra entities/attributes, or None for the bundled
        table.
        users: ``{"DOMAIN\\\\user": "password"}`` to require NTLM (needs ``crmload.mock.ntlm``).
        idle_timeout_s: idle keep-alive connections are closed after this long (IIS connectionTimeout: 120 s).
        max_body_bytes: larger request bodies get a fault and the connection is closed.
        auth_persist_single_request: NTLM authenticates one request only, not the connection.
        seed: seeds the ids the store makes up (None: random uuid4).
        tokens: bearer tokens the Organization service accepts, ``{token: user}`` or tokens of the default
            user; None accepts every caller as the default user (see ``crmload.mock.bearer``).
        max_batch_size: the most requests one ExecuteMultiple may carry (CRM's default MaxBatchSize: 1000).
        integrity: fault a lookup to a record that does not exist (ObjectDoesNotExist), as CRM does.
        limits: the Organization service's service-protection limits per user (``mock.protection``;
            Dataverse's 6000/1200 s/52 over 300 s by default); None turns them off.
        tls: serve HTTPS with this server-side context (tests build one from a ``trustme`` CA).
        clients, tenants, token_lifetime_s: serve an Azure-AD-like token authority at ``/{tenant}/...`` for
            these ``{client_id: secret}`` (tenants: None accepts any), whose tokens the Organization service
            accepts as the client id; see ``crmload.mock.authority``. MSAL needs ``tls`` for it.
        sleep, clock: injected time for latency and handshake costs (tests freeze the clock and record the
            sleeps).
    """

    def __init__(  # noqa: PLR0917 - positional order fixed by docs/INTERNALS.md
        self,
        org: str = "Contoso",
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
        metadata: Metadata | str | Path | None = None,
        users: Mapping[str, str] | None = None,
        idle_timeout_s: float = 120.0,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        auth_persist_single_request: bool = False,
        seed: int | None = None,
        tokens: Mapping[str, str] | Iterable[str] | None = None,
        max_batch_size: int = 1000,
        integrity: bool = True,
        limits: ServiceLimits | None = DEFAULT_SERVICE_LIMITS,
        tls: ssl.SSLContext | None = None,
        clients: Mapping[str, str] | None = None,
        tenants: Iterable[str] | None = None,
        token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.org = org
        self.host = host
        self._port = port
        self.idle_timeout_s = idle_timeout_s
        self.max_body_bytes = max_body_bytes
        self._sleep = sleep
        self._clock = clock
        meta = metadata if isinstance(metadata, Metadata) else load_metadata(metadata)
        self.metadata = meta
        self._seed = seed
        keys = {n: meta.entity(n).keys for n in meta.names() if meta.entity(n).keys}
        self.store = Store(self._id_factory(), keys=keys, integrity=integrity)
        self.store.after_create = self._after_create
        self._lock_corrupted = threading.Lock()
        self._corrupted: dict[str, list[dict[str, str]]] = {"silently_dropped": [], "mutated": []}
        self.stats_counter = Stats()
        self.injector = FaultInjector(faults or FaultPlan())
        self.protocol = Protocol(org, meta, self.store, seed or 0)
        self.tls = tls
        self.bearer = BearerAuth(tokens, clock=clock)
        self.authority = (
            TokenAuthority(clients, self.bearer, tenants=tenants, lifetime_s=token_lifetime_s)
            if clients
            else None
        )
        self.org_protocol = build_org_protocol(self.protocol.ctx, self.store, self.bearer, max_batch_size)
        self.protection = Protection(limits, clock)
        self.authenticator: Any = None
        if users:
            from crmload.mock.ntlm import NtlmAuthenticator  # noqa: PLC0415 - pyspnego only when NTLM is on

            self.authenticator = NtlmAuthenticator(
                dict(users), persist_single_request=auth_persist_single_request
            )
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._conns: dict[int, tuple[socket.socket, threading.Thread]] = {}
        self._conns_lock = threading.Lock()
        self._next_conn = 0
        self._stopping = threading.Event()

    def _id_factory(self) -> Callable[[], uuid.UUID]:
        if self._seed is None:
            return uuid.uuid4
        rng = random.Random(self._seed)
        lock = threading.Lock()

        def new_id() -> uuid.UUID:
            with lock:
                return uuid.UUID(int=rng.getrandbits(128), version=4)

        return new_id

    # -- public API ---

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port`` (``https://`` with ``tls``) of the running server."""
        return f"{'https' if self.tls is not None else 'http'}://{self.host}:{self._port}"

    @property
    def url(self) -> str:
        """The full 2007 endpoint URL."""
        return self.base_url + ns.PATH2007

    @property
    def url2011(self) -> str:
        """The Organization service's SOAP 1.1 URL (``.../XRMServices/2011/Organization.svc/web``)."""
        return self.base_url + ns.PATH2011

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force."""
        return self.injector.plan

    def start(self) -> MockCrm:
        """Bind, listen and start accepting connections; returns self."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(1024)
        sock.settimeout(0.5)
        self._listener = sock
        self._port = sock.getsockname()[1]
        self.bearer.resource = self.base_url + "/"
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"mockcrm-accept-{self._port}", daemon=True
        )
        self._accept_thread.start()
        log.info("mock CRM listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection and wait for the threads."""
        self._stopping.set()
        if self._listener is not None:
            # Wakes a blocked accept() at once on Linux; the 0.5 s accept timeout covers the rest.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
            self._accept_thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._conns_lock:
            conns = list(self._conns.values())
        for sock, _ in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in conns:
            thread.join(timeout=5)
        if self.authenticator is not None and hasattr(self.authenticator, "close"):
            self.authenticator.close()

    def __enter__(self) -> MockCrm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """Return the counters (see docs/INTERNALS.md), records per entity, and ``auth`` when NTLM is on."""
        snap = self.stats_counter.snapshot()
        snap["records_by_entity"] = self.store.counts()
        snap["service_protection"] = self.protection.snapshot()
        with self._lock_corrupted:
            snap["corrupted"] = {k: list(v) for k, v in self._corrupted.items()}
        if self.authenticator is not None:
            snap["auth"] = dict(self.authenticator.stats())
        if self.authority is not None:
            snap["token"] = self.authority.stats()
        return snap

    def records(self, entity: str) -> list[dict[str, Any]]:
        """Return the stored records of ``entity`` in their JSON-able form."""
        return self.store.records_json(entity.lower())

    def reset(self) -> None:
        """Clear the store and the counters, and reseed the fault plan."""
        self.store.clear()
        with self._lock_corrupted:
            for found in self._corrupted.values():
                found.clear()
        self.stats_counter.reset()
        self.injector.configure(self.injector.plan)
        self.protection.reset()
        if self.authority is not None:
            self.authority.reset()
        if self.authenticator is not None and hasattr(self.authenticator, "reset"):
            self.authenticator.reset()

    def _after_create(self, entity: str, rid: uuid.UUID, rec: dict[str, Any]) -> bool:
        """The plan's post-commit bugs: lose the record (True) or change one attribute in place."""
        plan, inj = self.injector.plan, self.injector
        if inj.chance(plan.silent_drop_rate):
            with self._lock_corrupted:
                self._corrupted["silently_dropped"].append({"entity": entity, "id": str(rid)})
            return True
        if inj.chance(plan.mutate_rate):
            field = mutable_attribute(rec, self.store.key_attributes(entity))
            if field is not None:
                rec[field] = mutated(rec[field])
                with self._lock_corrupted:
                    self._corrupted["mutated"].append({"entity": entity, "id": str(rid), "field": field})
        return False

    def configure(self, faults: FaultPlan | None) -> None:
        """Switch to another fault plan (None: no faults) and reseed it."""
        self.injector.configure(faults or FaultPlan())

    def configure_limits(self, limits: ServiceLimits | None) -> None:
        """Switch the service-protection limits (None: off); every user's windows and penalties start over."""
        self.protection.configure(limits)

    # -- connections ---

    def _accept_loop(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while not self._stopping.is_set():
            try:
                sock, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            open_now = self.stats_counter.connection_opened()
            with self._conns_lock:
                self._next_conn += 1
                state = ConnState(id=self._next_conn, peer=peer)
                limit = self.injector.plan.max_connections
                state.over_limit = bool(limit) and open_now > limit
                thread = threading.Thread(
                    target=self._serve, args=(sock, state), name=f"mockcrm-conn-{state.id}", daemon=True
                )
                self._conns[state.id] = (sock, thread)
            thread.start()

    def _serve(self, sock: socket.socket, state: ConnState) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.idle_timeout_s)
        buf = bytearray()
        try:
            if self.tls is not None:
                sock = self._tls_accept(sock, state)
            while not self._stopping.is_set():
                if not self._one_request(sock, state, buf):
                    break
        except (TimeoutError, ConnectionError, OSError) as exc:
            log.debug("connection %s ends: %r", state.id, exc)
        finally:
            try:
                sock.close()
            finally:
                with self._conns_lock:
                    self._conns.pop(state.id, None)
                self.stats_counter.connection_closed()

    def _tls_accept(self, sock: socket.socket, state: ConnState) -> socket.socket:
        """The server side of the TLS handshake, in the connection's thread; ``stop`` then shuts the TLS
        socket (the plain one is detached by the wrap)."""
        assert self.tls is not None
        try:
            wrapped = self.tls.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            self.stats_counter.fault("tls_handshake_failed")
            raise
        with self._conns_lock:
            if state.id in self._conns:
                self._conns[state.id] = (wrapped, self._conns[state.id][1])
        return wrapped

    def _one_request(  # noqa: PLR0911 - one exit per kind of answer reads best here
        self, sock: socket.socket, state: ConnState, buf: bytearray
    ) -> bool:
        """Read and answer one request; return False when the connection must end."""
        try:
            req = read_request(sock, buf, self.max_body_bytes)
        except TooLarge as big:
            return self._too_large(sock, buf, big)
        except BadRequest as bad:
            self.stats_counter.fault("bad_request")
            body = self.protocol.fault(SoapFault(CODE_UNEXPECTED, str(bad), client=True), "text/xml").body
            sock.sendall(response_bytes(bad.status, body, "text/xml; charset=utf-8", keep_alive=False))
            return False
        if req is None:
            return False
        state.requests += 1
        if "transfer-encoding" in req.headers:
            self.stats_counter.http("requests_chunked")
        if req.path.startswith("/_mock/"):
            status, ctype, body = handle_admin(self, req)
            return self._send(sock, state, req, status=status, body=body, ctype=ctype)
        if self.authority is not None and self.authority.handles(req.path):
            status, ctype, body = self.authority.answer(req, self.base_url)
            return self._send(sock, state, req, status=status, body=body, ctype=ctype)
        org_ns = org_soap_version(req.path, self.org)
        if org_ns is not None:
            return self._org(sock, state, req, org_ns)
        if self.authenticator is not None:
            result = self.authenticator.check(state, req.headers)
            if not result.ok:
                keep = req.keep_alive and not getattr(result, "close", False)
                reply = response_bytes(
                    result.status, b"Unauthorized", "text/plain", keep_alive=keep, extra=result.headers
                )
                sock.sendall(reply)
                return keep
        if req.path.lower() != ns.PATH2007.lower():
            return self._send(sock, state, req, status=404, body=b"Not Found", ctype="text/plain")
        if req.method != "POST":
            return self._send(
                sock,
                state,
                req,
                status=405,
                body=b"Not allowed",
                ctype="text/plain",
                extra=[("Allow", "POST")],
            )
        return self._soap(sock, state, req)

    def _too_large(self, sock: socket.socket, buf: bytearray, big: TooLarge) -> bool:
        self.stats_counter.fault("body_too_large")
        fault = SoapFault(
            CODE_UNEXPECTED,
            f"Maximum request length exceeded ({big.length} > {self.max_body_bytes} bytes).",
            client=True,
        )
        reply = self.protocol.fault(fault, big.request.headers.get("content-type", ""))
        if big.drainable and big.request.headers.get("expect", "").lower() != "100-continue":
            drain(sock, buf, big.length, _DRAIN_LIMIT)
        sock.sendall(response_bytes(reply.status, reply.body, reply.content_type, keep_alive=False))
        return False

    def _send(
        self,
        sock: socket.socket,
        state: ConnState,
        req: Request,
        *,
        status: int,
        body: bytes,
        ctype: str,
        extra: list[tuple[str, str]] | None = None,
        close: bool = False,
    ) -> bool:
        keep = req.keep_alive and not close and not self._stopping.is_set()
        if keep and req.version == "HTTP/1.0":  # a 1.0 client closes unless told the connection stays
            extra = [*(extra or ()), ("Connection", "keep-alive")]
        gzip = len(body) >= GZIP_MIN_BYTES and accepts_gzip(req.headers)
        if gzip:
            self.stats_counter.http("responses_gzip")
        sock.sendall(response_bytes(status, body, ctype, keep_alive=keep, extra=extra or (), gzip=gzip))
        state.responses += 1
        return keep

    def _org(self, sock: socket.socket, state: ConnState, req: Request, soap_ns: str) -> bool:
        """The Organization service's gate: bearer auth (401 with the challenge), POST only, then SOAP."""
        verdict = self.bearer.check(req.headers.get("authorization"))
        if verdict.user is None:
            self.stats_counter.fault("bearer_401")
            extra = list(verdict.headers)
            return self._send(sock, state, req, status=401, body=b"", ctype="text/plain", extra=extra)
        if req.method != "POST":
            extra = [("Allow", "POST")]
            return self._send(
                sock, state, req, status=405, body=b"Not allowed", ctype="text/plain", extra=extra
            )
        limits = self.protection.limits
        hint = [("x-ms-dop-hint", str(limits.dop_hint))] if limits is not None and limits.dop_hint else []
        ticket = self.protection.admit(verdict.user)
        if isinstance(ticket, Throttled):
            self.stats_counter.request_received()
            self.stats_counter.fault("service_protection_" + ticket.facet)
            body, headers = throttle_answer(ticket, soap_ns)
            ctype = org_content_type(soap_ns)
            return self._send(sock, state, req, status=500, body=body, ctype=ctype, extra=headers + hint)
        try:
            user = verdict.user
            return self._soap(
                sock,
                state,
                req,
                lambda: self.org_protocol.answer(req, soap_ns, user),
                ticket=ticket,
                extra=hint,
            )
        finally:
            self.protection.release(ticket)

    def _soap(
        self,
        sock: socket.socket,
        state: ConnState,
        req: Request,
        handle: Callable[[], SoapReply] | None = None,
        *,
        ticket: Ticket | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> bool:
        """Answer one SOAP request with the fault plan applied; ``ticket`` gets the execution time spent."""
        plan, stats, inj = self.injector.plan, self.stats_counter, self.injector
        stats.request_received()
        state.soap_requests += 1
        if state.soap_requests == 1 and plan.first_request_cost_ms > 0:
            stats.fault("first_request_cost")
            self._sleep(plan.first_request_cost_ms / 1000.0)
        if state.over_limit:
            stats.fault("max_connections")
            return self._send(sock, state, req, status=503, body=_BUSY_BODY, ctype="text/html", close=True)
        busy_kind = "busy_above_rate" if inj.over_rate() else "busy" if inj.chance(plan.busy_rate) else None
        busy_kind = busy_kind or ("busy_next" if inj.take_busy() else None)
        if busy_kind:
            stats.fault(busy_kind)
            extra = [("Retry-After", f"{plan.retry_after_s:g}")] if plan.retry_after_s is not None else []
            return self._send(sock, state, req, status=503, body=_BUSY_BODY, ctype="text/html", extra=extra)
        # Injected latency is the time to answer, as a client sees a slow server: the reply leaves ``delay``
        # after the request arrived, the mock's own parsing and store work included, so a benchmark's
        # "ideal = workers / latency" is what a perfect client would get.
        arrived = self._clock()
        delay = inj.delay_s()
        if inj.chance(plan.reset_before_commit_rate):
            stats.fault("reset_before_commit")
            return _reset(sock)
        action = req.headers.get("soapaction")
        # privilege_denied_after is a 2007-endpoint rehearsal; the Organization service keeps its own faults.
        if handle is None and (action or "").strip('" ').endswith("/Create") and inj.deny_create():
            reply = self.protocol.fault(_DENIED, req.headers.get("content-type", ""))
        elif handle is None:
            reply = self.protocol.handle(req.body, action, req.headers.get("content-type", ""))
        else:
            reply = handle()
        handled = self._clock()
        stats.reply(reply)
        if delay > 0:
            stats.fault("latency")
            remaining = arrived + delay - self._clock()
            if remaining > 0:
                self._sleep(remaining)
        executed = self._execute(plan.exec_ms_per_record * reply.records / 1000.0)
        if ticket is not None:  # what the server spent: its own work, not the injected network latency
            ticket.exec_s = (handled - arrived) + executed
            # Done before the answer leaves: a client that sends its next request the moment it reads this
            # one's answer has one request in flight, not two.
            self.protection.release(ticket)
        if inj.chance(plan.reset_after_commit_rate):
            stats.fault("reset_after_commit")
            return _reset(sock)
        close = bool(plan.close_every) and (state.responses + 1) % plan.close_every == 0
        if close:
            stats.fault("close_every")
        return self._send(
            sock,
            state,
            req,
            status=reply.status,
            body=reply.body,
            ctype=reply.content_type,
            close=close,
            extra=extra,
        )

    def _execute(self, seconds: float) -> float:
        """Spend the plan's execution time (the server's own work, on top of the network latency); return
        the time it really took."""
        if seconds <= 0:
            return 0.0
        started = self._clock()
        self._sleep(seconds)
        return self._clock() - started


def _reset(sock: socket.socket) -> bool:
    """Abort the connection with an RST (SO_LINGER 0) and no response."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False
