"""Transport pieces that need no socket: policies, the error boundary, environment capture, the auth seam."""

from __future__ import annotations

import errno
import http.client
import socket
import threading
from typing import Any

import pytest
import requests
import urllib3.exceptions as u3
from lxml import etree
from urllib3.connection import HTTPConnection

from crmload._connection import ConnectionMeter, counting_pool_classes
from crmload._errmap import classify, map_transport_errors
from crmload.errors import (
    ConfigError,
    ConnectError,
    CrmLoadError,
    PortExhaustedError,
    ProtocolError,
    ResponseLostError,
    TlsError,
    TransportError,
)
from crmload.transport import (
    DEFAULT_TIMEOUT,
    PoolLimits,
    Timeout,
    Transport,
    mask_headers,
    resolve_environment,
)


class FakeGuard:
    def __init__(self, wait: float = 0.0) -> None:
        self.calls = 0
        self.wait = wait

    def acquire(self) -> float:
        self.calls += 1
        return self.wait


def _conn() -> HTTPConnection:
    return HTTPConnection("127.0.0.1", 1)


def _requests_connect_error(os_err: OSError) -> requests.ConnectionError:
    """The chain requests raises for a failed connect: ConnectionError(MaxRetryError(NewConnectionError))."""
    try:
        try:
            raise os_err
        except OSError as e:
            raise u3.NewConnectionError(_conn(), f"Failed to establish a new connection: {e}") from e
    except u3.NewConnectionError as nce:
        mre = u3.MaxRetryError(None, "/x", reason=nce)  # type: ignore[arg-type]
        return requests.ConnectionError(mre)


def _requests_after_send_error(inner: BaseException) -> requests.ConnectionError:
    """The chain for an answer lost after send: ConnectionError(ProtocolError("Connection aborted.", e))."""
    return requests.ConnectionError(u3.ProtocolError("Connection aborted.", inner))


# --- policies --------------------------------------------------------------------------------------------


def test_timeout_defaults_and_validation() -> None:
    assert DEFAULT_TIMEOUT.as_tuple() == (10.0, 120.0)
    assert Timeout(connect_s=1, read_s=2).as_tuple() == (1.0, 2.0)
    for bad in (0, -1, True, "5"):
        with pytest.raises(ConfigError):
            Timeout(connect_s=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Timeout(5.0)  # type: ignore[misc]  # kw_only


def test_pool_limits_validation() -> None:
    assert PoolLimits().maxsize is None
    with pytest.raises(ConfigError):
        PoolLimits(maxsize=0)


# --- the error boundary ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.EADDRNOTAVAIL, errno.EADDRINUSE, 10048, 10049])
def test_port_exhaustion_found_under_requests_wrapping(code: int) -> None:
    err = classify(_requests_connect_error(OSError(code, "Cannot assign requested address")))
    assert type(err) is PortExhaustedError
    assert err.errno == code
    assert err.phase == "connect"


def test_connection_refused_is_connect_error() -> None:
    err = classify(_requests_connect_error(ConnectionRefusedError(errno.ECONNREFUSED, "refused")))
    assert type(err) is ConnectError
    assert err.errno == errno.ECONNREFUSED


def test_connect_timeout_and_dns_failure_are_connect_errors() -> None:
    timeout = requests.ConnectTimeout(
        u3.MaxRetryError(None, "/", reason=u3.ConnectTimeoutError(_conn(), "t"))
    )  # type: ignore[arg-type]
    assert type(classify(timeout)) is ConnectError
    dns = u3.NameResolutionError("crm.invalid", _conn(), socket.gaierror(-2, "Name or service not known"))
    assert type(classify(requests.ConnectionError(u3.MaxRetryError(None, "/", reason=dns)))) is ConnectError  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "inner",
    [
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        http.client.RemoteDisconnected("Remote end closed connection without response"),
        BrokenPipeError(errno.EPIPE, "Broken pipe"),
    ],
)
def test_failures_after_send_are_response_lost(inner: BaseException) -> None:
    err = classify(_requests_after_send_error(inner))
    assert type(err) is ResponseLostError
    assert err.maybe_applied
    assert err.phase == "send"


def test_read_timeout_and_chunked_errors_are_response_lost() -> None:
    assert type(classify(requests.ReadTimeout("read timed out"))) is ResponseLostError
    chunked = requests.exceptions.ChunkedEncodingError(u3.ProtocolError("Response ended prematurely"))
    assert type(classify(chunked)) is ResponseLostError


def test_protocol_and_config_errors() -> None:
    assert type(classify(etree.XMLSyntaxError("bad", 1, 1, 1, "x"))) is ProtocolError  # type: ignore[call-arg]
    assert type(classify(requests.exceptions.ContentDecodingError("gzip"))) is ProtocolError
    assert type(classify(requests.exceptions.InvalidURL("no host"))) is ConfigError


def test_certificate_failure_is_not_a_retryable_connect_error() -> None:
    import ssl

    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err = classify(requests.exceptions.SSLError(u3.MaxRetryError(None, "/", reason=u3.SSLError(cert))))  # type: ignore[arg-type]
    assert type(err) is TlsError
    assert isinstance(err, TransportError)
    assert not isinstance(err, ConnectError)
    assert err.phase == "connect"


def test_boundary_chains_and_passes_crmload_errors_through() -> None:
    original = ConnectionResetError(errno.ECONNRESET, "reset")
    with pytest.raises(ResponseLostError) as info, map_transport_errors():
        raise original
    assert info.value.__cause__ is original
    mine = ConnectError("already mapped")
    with pytest.raises(ConnectError) as info2, map_transport_errors():
        raise mine
    assert info2.value is mine
    # Bugs are not disguised as transport errors.
    with pytest.raises(KeyError), map_transport_errors():
        raise KeyError("bug")


def test_messages_never_carry_url_credentials() -> None:
    inner = OSError(errno.ECONNREFUSED, "refused by http://alice:s3cret@proxy:3128/")
    err = classify(inner)
    assert isinstance(err, CrmLoadError)
    assert "s3cret" not in str(err)
    assert "alice" not in str(err)


# --- environment captured once ---------------------------------------------------------------------------


def test_environment_proxies_captured_and_explicit_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://envproxy:8080")
    monkeypatch.setenv("NO_PROXY", "")
    env = resolve_environment("http://crm.example/x", None, True)
    assert env.proxies.get("http") == "http://envproxy:8080"
    env2 = resolve_environment("http://crm.example/x", {"http": "http://explicit:1"}, True)
    assert env2.proxies["http"] == "http://explicit:1"


def test_no_proxy_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://envproxy:8080")
    monkeypatch.setenv("NO_PROXY", "crm.example")
    assert "http" not in resolve_environment("http://crm.example/x", None, True).proxies


def test_ca_bundle_variable_and_verify_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert resolve_environment("https://crm/x", None, True).verify is True
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ca.pem")
    assert resolve_environment("https://crm/x", None, True).verify == "/etc/ca.pem"
    assert resolve_environment("https://crm/x", None, False).verify is False


def test_sessions_do_not_reread_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://envproxy:8080")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with Transport("http://crm.example/x", guard=FakeGuard()) as t:
        session = t._session()
        assert session.trust_env is False
        assert session.proxies["http"] == "http://envproxy:8080"
        assert session.verify is True


# --- pool wiring and the auth seam -----------------------------------------------------------------------


def test_pool_is_sized_from_workers_and_blocks() -> None:
    with Transport("http://127.0.0.1:1/x", workers=8, guard=FakeGuard()) as t:
        adapter = t._session().get_adapter("http://127.0.0.1:1/x")
        assert adapter._pool_maxsize == 8  # type: ignore[attr-defined]
        assert adapter._pool_block is True  # type: ignore[attr-defined]
        assert adapter.max_retries.total == 0  # type: ignore[attr-defined]
        pool = adapter.poolmanager.connection_from_url("http://127.0.0.1:1/x")  # type: ignore[attr-defined]
        assert pool.ConnectionCls.meter is t._meter
        assert t.stats()["pool_maxsize"] == 8


def test_meter_counts_guard_and_outcomes() -> None:
    guard = FakeGuard(wait=0.25)
    meter = ConnectionMeter(guard)
    a, b = socket.socketpair()
    try:
        assert meter.open_socket(lambda: a) is a
    finally:
        a.close()
        b.close()

    def refuse() -> socket.socket:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")

    with pytest.raises(ConnectionRefusedError):
        meter.open_socket(refuse)
    snap = meter.snapshot()
    assert snap.pop("connect_window_s") >= 0
    assert snap == {
        "sockets_opened": 1,
        "connect_attempts": 2,
        "connect_failures": 1,
        "guard_waits": 2,
        "guard_wait_s": 0.5,
    }
    assert guard.calls == 2
    classes = counting_pool_classes(meter)
    assert classes["https"].ConnectionCls.meter is meter  # type: ignore[attr-defined]


class RecordingAuth:
    """A stand-in for crmload.auth objects: connection-bound, installs itself per session."""

    pins_connection = True

    def __init__(self) -> None:
        self.sessions: list[Any] = []
        self.lock = threading.Lock()

    def prepare(self, session: requests.Session) -> None:
        with self.lock:
            self.sessions.append(session)


def test_pinned_auth_gets_one_session_per_thread() -> None:
    auth = RecordingAuth()
    with Transport("http://127.0.0.1:1/x", workers=4, guard=FakeGuard(), auth=auth) as t:
        assert t.pinned
        seen: list[requests.Session] = []

        def work() -> None:
            seen.append(t._session())
            seen.append(t._session())

        threads = [threading.Thread(target=work) for _ in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len({id(s) for s in seen}) == 3
        assert len(auth.sessions) == 3
        assert t.stats()["pool_maxsize"] == 1
        assert t.stats()["sessions"] == 3


def test_plain_auth_is_set_on_the_session_and_unpinned_by_default() -> None:
    with Transport("http://127.0.0.1:1/x", guard=FakeGuard(), auth=("user", "pw")) as t:
        assert not t.pinned
        assert t._session().auth == ("user", "pw")


def test_closed_transport_refuses() -> None:
    t = Transport("http://127.0.0.1:1/x", guard=FakeGuard())
    t.close()
    t.close()
    with pytest.raises(ConfigError):
        t.post(b"x", {})


def test_bad_url_and_workers() -> None:
    with pytest.raises(ConfigError):
        Transport("ftp://crm/x", guard=FakeGuard())
    with pytest.raises(ConfigError):
        Transport("http://crm/x", workers=0, guard=FakeGuard())


def test_mask_headers() -> None:
    masked = mask_headers({"Authorization": "NTLM abc", "SOAPAction": "x"})
    assert masked == {"Authorization": "***", "SOAPAction": "x"}
