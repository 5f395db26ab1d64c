"""Acceptance 6: whatever the mock injects, only crmload errors leave the client."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from crmload.client import CrmClient
from crmload.errors import ConfigError, CrmLoadError, EncodingError
from crmload.mock import FaultPlan, MockCrm
from crmload.retry import RetryPolicy
from crmload.throttle import RateLimit
from crmload.transport import PoolLimits, Timeout
from crmload.types import Lookup, Money, Picklist

POLICY = RetryPolicy(max_attempts=2, jitter=False, backoff_base_s=0.0, backoff_max_s=0.0)

#: Every fault kind of FaultPlan, each strong enough to make calls fail (or, for the mild ones, not).
PLANS: dict[str, dict[str, Any]] = {
    "busy": {"busy_rate": 1.0},
    "busy_retry_after": {"busy_rate": 1.0, "retry_after_s": 1},
    "busy_above_rate": {"busy_above_rate": 0.5},
    "reset_before_commit": {"reset_before_commit_rate": 1.0},
    "reset_after_commit": {"reset_after_commit_rate": 1.0},
    "close_every": {"close_every": 1},
    "read_timeout": {"latency_ms": 400.0},
    "handshake_cost_jitter": {"first_request_cost_ms": 5.0, "jitter_ms": 5.0},
    "max_connections": {"max_connections": 1},
}
MUST_FAIL = {"busy", "busy_retry_after", "busy_above_rate", "reset_before_commit", "reset_after_commit"}
MUST_FAIL |= {"read_timeout", "max_connections"}


def _operations(client: CrmClient) -> Iterator[Callable[[], object]]:
    missing = uuid.uuid4()
    yield lambda: client.create("account", {"name": "x"})
    yield lambda: client.create("account", {"name": "k"}, id=uuid.uuid4())
    yield lambda: client.update("account", missing, {"name": "y"})
    yield lambda: client.retrieve("account", missing)
    yield lambda: list(client.retrieve_multiple("account", page_size=2))
    yield lambda: client.delete("account", missing)
    yield client.who_am_i
    yield lambda: client.execute_raw('<Request xsi:type="WhoAmIRequest"/>')
    yield lambda: client.create("account", {"nosuchattribute": "z"})


def _run_all(client: CrmClient) -> list[BaseException]:
    errors: list[BaseException] = []
    for op in _operations(client):
        try:
            op()
        except BaseException as exc:  # the point: catch anything, then check what it is
            errors.append(exc)
    return errors


def _client(url: str, **kwargs: Any) -> CrmClient:
    kwargs.setdefault("timeout", Timeout(connect_s=2.0, read_s=0.1))
    return CrmClient(
        url, org="Contoso", rate=RateLimit.unlimited(), retry=POLICY, sleep=lambda s: None, **kwargs
    )


@pytest.mark.parametrize("kind", sorted(PLANS))
def test_only_crmload_errors_escape(kind: str, crm: MockCrm) -> None:
    crm.configure(FaultPlan(seed=3, **PLANS[kind]))
    holder = None
    if kind == "max_connections":
        # Hold the one allowed connection, so the client's connection is over the limit.
        holder = socket.create_connection((crm.host, crm.port))
        threading.Event().wait(0.05)
    try:
        with _client(crm.url) as client:
            errors = _run_all(client)
    finally:
        if holder is not None:
            holder.close()
    foreign = [e for e in errors if not isinstance(e, CrmLoadError)]
    assert foreign == []
    # Every plan also meets CRM faults (missing records, an unknown attribute): the test sees real errors.
    assert errors
    if kind in MUST_FAIL:
        assert len(errors) >= 7, [type(e).__name__ for e in errors]
    assert crm.stats()["faults_by_kind"], "the plan injected nothing"


def test_only_crmload_errors_escape_without_a_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with _client(f"http://127.0.0.1:{port}/MSCRMServices/2007/CrmService.asmx") as client:
        errors = _run_all(client)
    assert len(errors) == 9
    assert all(isinstance(e, CrmLoadError) for e in errors)


def _garbage_server(reply: bytes) -> tuple[socket.socket, threading.Event, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2.0)
            with conn:
                try:
                    conn.recv(65536)
                    conn.sendall(reply)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, stop, thread


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot xml!!",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<truncated",
        b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\n<?xm!",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
        b"SMTP ready\r\n",
        b"",
    ],
)
def test_only_crmload_errors_escape_from_a_broken_server(reply: bytes) -> None:
    listener, stop, thread = _garbage_server(reply)
    port = listener.getsockname()[1]
    try:
        with _client(f"http://127.0.0.1:{port}/MSCRMServices/2007/CrmService.asmx") as client:
            errors = _run_all(client)
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert len(errors) == 9
    assert all(isinstance(e, CrmLoadError) for e in errors), [repr(e) for e in errors]


# --- issue 16 item 9: bad arguments are crmload errors with a message, never built-in exceptions ----------

_URL = "http://127.0.0.1:1/MSCRMServices/2007/CrmService.asmx"
BAD_CONSTRUCTIONS: dict[str, Callable[[], object]] = {
    "port out of range": lambda: CrmClient("http://127.0.0.1:99999/x", org="Contoso"),
    "bad IPv6 host": lambda: CrmClient("http://[::1/x", org="Contoso"),
    "space in host": lambda: CrmClient("http://exa mple.com/x", org="Contoso"),
    "budget not a PortBudget": lambda: CrmClient(_URL, org="Contoso", budget="x"),  # type: ignore[arg-type]
    "timeout not a Timeout": lambda: CrmClient(_URL, org="Contoso", timeout=5),  # type: ignore[arg-type]
    "retry not a RetryPolicy": lambda: CrmClient(_URL, org="Contoso", retry="x"),  # type: ignore[arg-type]
    "workers not an int": lambda: CrmClient(_URL, org="Contoso", workers="4"),  # type: ignore[arg-type]
    "proxies not a mapping": lambda: CrmClient(_URL, org="Contoso", proxies=5),  # type: ignore[arg-type]
    "auth not an auth object": lambda: CrmClient(_URL, org="Contoso", auth=5),
    "rate not text": lambda: CrmClient(_URL, org="Contoso", rate=RateLimit.parse(5)),  # type: ignore[arg-type]
    "pool size text": lambda: CrmClient(_URL, org="Contoso", limits=PoolLimits(maxsize="4")),  # type: ignore[arg-type]
    "Money('abc')": lambda: Money("abc"),
    "Money(NaN)": lambda: Money(Decimal("NaN")),
    "Picklist('x')": lambda: Picklist("x"),  # type: ignore[arg-type]
    "Lookup bad id": lambda: Lookup("account", "nope"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", sorted(BAD_CONSTRUCTIONS))
def test_bad_arguments_raise_config_errors(case: str) -> None:
    with pytest.raises(CrmLoadError) as info:
        BAD_CONSTRUCTIONS[case]()
    assert isinstance(info.value, ConfigError | EncodingError), type(info.value).__mro__
    assert str(info.value), "the error must say what is wrong"


def test_value_errors_stay_catchable_as_the_builtins_they_were() -> None:
    # Code written against the old behaviour (``except ValueError``) keeps working.
    with pytest.raises(ValueError, match="not a number"):
        Money("abc")
    with pytest.raises(TypeError, match="must be an int"):
        Picklist("x")  # type: ignore[arg-type]


def test_url_errors_never_show_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        CrmClient("http://alice:s3cret@127.0.0.1:99999/x", org="Contoso")
    assert "s3cret" not in str(info.value)
    assert "99999" in str(info.value)


BAD_CALLS: dict[str, Callable[[CrmClient], object]] = {
    "create id not a GUID": lambda c: c.create("account", {"name": "x"}, id="not-a-uuid"),
    "create attrs None": lambda c: c.create("account", None),  # type: ignore[arg-type]
    "create attrs a list": lambda c: c.create("account", [("name", "x")]),  # type: ignore[arg-type]
    "retrieve id not a GUID": lambda c: c.retrieve("account", "nope"),
    "update id not a GUID": lambda c: c.update("account", "nope", {"name": "x"}),
    "delete id an int": lambda c: c.delete("account", 5),  # type: ignore[arg-type]
    "retrieve_multiple where an int": lambda c: list(c.retrieve_multiple("account", where=5)),  # type: ignore[arg-type]
    "retrieve_multiple columns an int": lambda c: list(c.retrieve_multiple("account", columns=5)),  # type: ignore[arg-type]
    "retrieve_multiple page_size text": lambda c: list(c.retrieve_multiple("account", page_size="x")),  # type: ignore[arg-type]
    "fetch None": lambda c: c.fetch(None),  # type: ignore[arg-type]
    "execute_raw None": lambda c: c.execute_raw(None),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_call_arguments_raise_config_errors_and_send_nothing(case: str, crm: MockCrm) -> None:
    with _client(crm.url) as client, pytest.raises(CrmLoadError) as info:
        BAD_CALLS[case](client)
    assert isinstance(info.value, ConfigError | EncodingError), type(info.value).__mro__
    assert str(info.value)
    assert crm.stats()["requests"] == 0, "a refused argument must be refused before anything is sent"
