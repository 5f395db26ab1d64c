"""The mock's HTTP/1.1 layer on raw sockets: Expect 100-continue, pipelining, HTTP/1.0, bad path or method."""

from __future__ import annotations

import socket

from crmload.mock import MockCrm
from tests.mock.helpers import WS, envelope

WHOAMI = envelope(f'<Execute xmlns="{WS}"><Request xsi:type="WhoAmIRequest" /></Execute>')
PATH = "/MSCRMServices/2007/CrmService.asmx"


def _request(
    body: bytes, *, version: str = "HTTP/1.1", extra: str = "", path: str = PATH, method: str = "POST"
) -> bytes:
    head = (
        f"{method} {path} {version}\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f'SOAPAction: "http://schemas.microsoft.com/crm/2007/WebServices/Execute"\r\n'
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_expect_100_continue(crm: MockCrm) -> None:
    with socket.create_connection(("127.0.0.1", crm.port), timeout=5) as sock:
        req = _request(WHOAMI, extra="Expect: 100-continue\r\nConnection: close\r\n")
        head, body = req.split(b"\r\n\r\n", 1)
        sock.sendall(head + b"\r\n\r\n")
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        data = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"WhoAmIResponse" in data


def test_pipelined_requests_on_one_connection(crm: MockCrm) -> None:
    with socket.create_connection(("127.0.0.1", crm.port), timeout=5) as sock:
        sock.sendall(_request(WHOAMI) * 2 + _request(WHOAMI, extra="Connection: close\r\n"))
        data = _read_all(sock)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert crm.stats()["connections_accepted"] == 1
    assert crm.stats()["requests_by_op"] == {"Execute": 3}


def test_http10_closes_unless_keep_alive(crm: MockCrm) -> None:
    with socket.create_connection(("127.0.0.1", crm.port), timeout=5) as sock:
        sock.sendall(_request(WHOAMI, version="HTTP/1.0"))
        data = _read_all(sock)  # ends because the server closes
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in data


def test_wrong_path_and_method(crm: MockCrm) -> None:
    with socket.create_connection(("127.0.0.1", crm.port), timeout=5) as sock:
        sock.sendall(
            _request(WHOAMI, path="/nope") + _request(b"", method="GET", extra="Connection: close\r\n")
        )
        data = _read_all(sock)
    assert b"HTTP/1.1 404 Not Found" in data
    assert b"HTTP/1.1 405 Method Not Allowed" in data


def test_path_is_case_insensitive(crm: MockCrm) -> None:
    with socket.create_connection(("127.0.0.1", crm.port), timeout=5) as sock:
        sock.sendall(
            _request(WHOAMI, path="/MSCrmServices/2007/crmservice.asmx", extra="Connection: close\r\n")
        )
        assert _read_all(sock).startswith(b"HTTP/1.1 200 OK")
