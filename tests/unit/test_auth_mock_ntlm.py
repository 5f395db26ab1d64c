"""The mock's NTLM acceptor, driven by pyspnego clients without sockets."""

from __future__ import annotations

import base64
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import spnego

from crmload.mock.ntlm import AuthResult, NtlmAuthenticator

PASSWORD = "S3cr:et-pw!"


@dataclass
class Conn:
    id: int = 1
    auth: Any = None


@pytest.fixture
def authn() -> Iterator[NtlmAuthenticator]:
    a = NtlmAuthenticator({"CONTOSO\\alice": PASSWORD, "bob": "b0b"})
    yield a
    a.close()


def header(result: AuthResult, scheme: str) -> bytes:
    values = [v for k, v in result.headers if k.lower() == "www-authenticate" and v.startswith(scheme + " ")]
    assert len(values) == 1
    return base64.b64decode(values[0].split(" ", 1)[1])


def handshake(
    a: NtlmAuthenticator,
    conn: Conn,
    user: str,
    password: str,
    *,
    scheme: str = "NTLM",
    protocol: str = "ntlm",
) -> AuthResult:
    client = spnego.client(user, password, protocol=protocol)
    first = a.check(conn, {"Authorization": f"{scheme} {base64.b64encode(client.step()).decode()}"})
    assert (first.ok, first.status) == (False, 401)
    type3 = client.step(header(first, scheme))
    assert type3 is not None
    return a.check(conn, {"Authorization": f"{scheme} {base64.b64encode(type3).decode()}"})


def test_anonymous_request_is_offered_both_schemes(authn: NtlmAuthenticator) -> None:
    result = authn.check(Conn(), {})
    assert (result.ok, result.status) == (False, 401)
    assert ("WWW-Authenticate", "NTLM") in result.headers
    assert ("WWW-Authenticate", "Negotiate") in result.headers
    assert authn.stats()["anonymous"] == 1


def test_ntlm_handshake_authenticates_the_connection_not_the_request(authn: NtlmAuthenticator) -> None:
    conn = Conn()
    assert handshake(authn, conn, "contoso\\ALICE", PASSWORD).ok  # case-insensitive, like Windows
    assert authn.check(conn, {}).ok
    assert authn.check(conn, {}).ok
    assert not authn.check(Conn(id=2), {}).ok  # a new connection must authenticate again
    stats = authn.stats()
    assert (stats["handshakes"], stats["challenges"], stats["handshake_failures"]) == (1, 1, 0)
    assert stats["authenticated_requests"] == 3  # the type-3 request itself is processed


def test_user_without_domain(authn: NtlmAuthenticator) -> None:
    assert handshake(authn, Conn(), "BOB", "b0b").ok


def test_negotiate_wrapped_ntlm(authn: NtlmAuthenticator) -> None:
    conn = Conn()
    assert handshake(authn, conn, "CONTOSO\\alice", PASSWORD, scheme="Negotiate", protocol="negotiate").ok
    assert authn.check(conn, {}).ok


def test_raw_ntlm_token_under_negotiate_scheme(authn: NtlmAuthenticator) -> None:
    assert handshake(authn, Conn(), "CONTOSO\\alice", PASSWORD, scheme="Negotiate").ok


def test_wrong_password_is_a_counted_failure(authn: NtlmAuthenticator) -> None:
    conn = Conn()
    result = handshake(authn, conn, "CONTOSO\\alice", "wrong")
    assert (result.ok, result.status) == (False, 401)
    assert conn.auth is None
    assert not authn.check(conn, {}).ok
    stats = authn.stats()
    assert (stats["handshakes"], stats["handshake_failures"]) == (0, 1)


def test_unknown_user_fails(authn: NtlmAuthenticator) -> None:
    assert not handshake(authn, Conn(), "CONTOSO\\mallory", PASSWORD).ok


def test_type3_on_another_connection_fails(authn: NtlmAuthenticator) -> None:
    client = spnego.client("CONTOSO\\alice", PASSWORD, protocol="ntlm")
    first = authn.check(Conn(id=1), {"Authorization": "NTLM " + base64.b64encode(client.step()).decode()})
    type3 = client.step(header(first, "NTLM"))
    assert type3 is not None
    other = authn.check(Conn(id=2), {"Authorization": "NTLM " + base64.b64encode(type3).decode()})
    assert not other.ok
    assert authn.stats()["handshake_failures"] == 1


@pytest.mark.parametrize("value", ["NTLM", "NTLM !!!", "Basic YWxpY2U6eA==", "NTLM " + "A" * 8])
def test_garbage_headers_are_refused(authn: NtlmAuthenticator, value: str) -> None:
    result = authn.check(Conn(), {"Authorization": value})
    assert (result.ok, result.status) == (False, 401)


def test_persist_single_request_reauthenticates_every_request() -> None:
    a = NtlmAuthenticator({"CONTOSO\\alice": PASSWORD}, persist_single_request=True)
    try:
        conn = Conn()
        assert handshake(a, conn, "CONTOSO\\alice", PASSWORD).ok
        assert not a.check(conn, {}).ok
        assert handshake(a, conn, "CONTOSO\\alice", PASSWORD).ok
        assert a.stats()["handshakes"] == 2
    finally:
        a.close()


def test_users_file_is_private_holds_no_password_and_is_removed() -> None:
    a = NtlmAuthenticator({"CONTOSO\\alice": PASSWORD})
    path = a._path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, encoding="utf-8") as fh:
        assert PASSWORD not in fh.read()
    assert PASSWORD not in repr(a)
    a.close()
    assert not os.path.exists(path)


def test_env_var_is_restored_and_authenticators_do_not_share_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NTLM_USER_FILE", "/nonexistent/elsewhere")
    one = NtlmAuthenticator({"CONTOSO\\alice": "one"})
    two = NtlmAuthenticator({"CONTOSO\\alice": "two"})
    try:
        assert handshake(one, Conn(), "CONTOSO\\alice", "one").ok
        assert not handshake(two, Conn(), "CONTOSO\\alice", "one").ok
        assert handshake(two, Conn(), "CONTOSO\\alice", "two").ok
        assert os.environ["NTLM_USER_FILE"] == "/nonexistent/elsewhere"
    finally:
        one.close()
        two.close()


def test_concurrent_handshakes_on_many_connections(authn: NtlmAuthenticator) -> None:
    results: list[bool] = []

    def worker(i: int) -> None:
        for _ in range(5):
            results.append(handshake(authn, Conn(id=i), "CONTOSO\\alice", PASSWORD).ok)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 40
    assert authn.stats()["handshakes"] == 40
