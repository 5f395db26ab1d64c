"""What real HTTP clients send (issue 14): chunked bodies, pipelining, HTTP/1.0 keep-alive, gzip answers."""

from __future__ import annotations

import gzip
import http.client
import socket
import uuid
from collections.abc import Callable, Iterator
from xml.sax.saxutils import escape

import pytest
from lxml import etree

from crmload.mock import MockCrm
from tests.mock.helpers import ACTION, QRY, WS, WS06, connect, dyn_entity, envelope, post, prop

PATH = "/MSCRMServices/2007/CrmService.asmx"
WHOAMI = envelope(f'<Execute xmlns="{WS}"><Request xsi:type="WhoAmIRequest" /></Execute>')
NAME = "chunk & Kraków 東京"


def _create_body(name: str, rid: str | None = None) -> bytes:
    key = prop("KeyProperty", "accountid", rid) if rid else ""
    props = prop("StringProperty", "name", escape(name)) + key
    return envelope(f'<Create xmlns="{WS}">{dyn_entity("account", props)}</Create>')


def _retrieve_body(rid: str) -> bytes:
    cols = f'<columnSet xmlns:q="{QRY}" xsi:type="q:AllColumns" />'
    return envelope(f'<Retrieve xmlns="{WS}"><entityName>account</entityName><id>{rid}</id>{cols}</Retrieve>')


def _head(op: str, *, version: str = "HTTP/1.1", extra: str = "") -> bytes:
    return (
        f"POST {PATH} {version}\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f'SOAPAction: "{ACTION}{op}"\r\n{extra}\r\n'
    ).encode()


def _sized(op: str, body: bytes, *, version: str = "HTTP/1.1", extra: str = "") -> bytes:
    return _head(op, version=version, extra=f"Content-Length: {len(body)}\r\n{extra}") + body


def _chunked(op: str, body: bytes, sizes: tuple[int, ...] = (7, 1, 300), extra: str = "") -> bytes:
    """``body`` as chunks of ``sizes`` (cycled), with a chunk extension and a trailer, as Java stacks send."""
    out, pos, i = [], 0, 0
    while pos < len(body):
        piece = body[pos : pos + sizes[i % len(sizes)]]
        ext = ";name=value" if i == 1 else ""
        out.append(f"{len(piece):X}{ext}\r\n".encode() + piece + b"\r\n")
        pos, i = pos + len(piece), i + 1
    return (
        _head(op, extra=f"Transfer-Encoding: chunked\r\n{extra}")
        + b"".join(out)
        + b"0\r\nX-Trailer: 1\r\n\r\n"
    )


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a stream of Content-Length responses into (status, headers, body), in order."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        out.append((int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return out


def _raw(crm: MockCrm) -> socket.socket:
    return socket.create_connection(("127.0.0.1", crm.port), timeout=5)


# -- chunked request bodies (Axis2, CXF and .NET send them) ---


def test_chunked_body_with_http_client_stores_the_exact_record(crm: MockCrm) -> None:
    body = _create_body(NAME)
    # Chunks of 5 bytes split the multi-byte UTF-8 characters across chunk boundaries.
    pieces = [body[i : i + 5] for i in range(0, len(body), 5)]
    conn = connect(crm)
    try:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}Create"'}
        conn.request("POST", PATH, iter(pieces), headers, encode_chunked=True)
        resp = conn.getresponse()
        reply = resp.read()
        assert resp.status == 200, reply
        assert post(conn, "Execute", WHOAMI).status == 200  # the same connection goes on
    finally:
        conn.close()
    assert [r["name"] for r in crm.records("account")] == [NAME]
    stats = crm.stats()
    assert (stats["connections_accepted"], stats["http_features"]["requests_chunked"]) == (1, 1)


def test_chunked_with_extensions_trailers_and_expect_100_continue(crm: MockCrm) -> None:
    req = _chunked("Create", _create_body(NAME), extra="Expect: 100-continue\r\nConnection: close\r\n")
    head, _, chunks = req.partition(b"\r\n\r\n")
    with _raw(crm) as sock:
        sock.sendall(head + b"\r\n\r\n")
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(chunks)
        [(status, headers, _)] = _responses(_read_all(sock))
    assert (status, headers["connection"]) == (200, "close")
    assert [r["name"] for r in crm.records("account")] == [NAME]


@pytest.mark.parametrize(
    ("tail", "status"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", 400),  # not hex
        (b"-5\r\nhello\r\n0\r\n\r\n", 400),
        (b"5\r\nhelloXX0\r\n\r\n", 400),  # data not followed by CRLF
        (b"5\r\nhel", 400),  # connection ends inside a chunk
    ],
)
def test_bad_chunked_bodies_get_400_and_close(crm: MockCrm, tail: bytes, status: int) -> None:
    with _raw(crm) as sock:
        sock.sendall(_head("Create", extra="Transfer-Encoding: chunked\r\n") + tail)
        sock.shutdown(socket.SHUT_WR)
        data = _read_all(sock)
    assert data.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close" in data
    assert crm.records("account") == []


def test_unsupported_transfer_coding_is_501(crm: MockCrm) -> None:
    with _raw(crm) as sock:
        sock.sendall(_head("Create", extra="Transfer-Encoding: gzip, chunked\r\n") + b"0\r\n\r\n")
        data = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 501 ")


def test_chunked_body_over_the_limit_is_refused(crm_factory: Callable[..., MockCrm]) -> None:
    server = crm_factory(max_body_bytes=1000)
    with _raw(server) as sock:
        sock.sendall(_chunked("Create", _create_body("x" * 2000)))
        data = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"Maximum request length exceeded" in data
    assert server.records("account") == []


# -- pipelining: several requests written before any answer is read ---


def test_pipelined_requests_are_answered_in_order(crm: MockCrm) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    stream = (
        _sized("Create", _create_body("first", a))
        + _chunked("Create", _create_body("second", b))
        + _sized("Retrieve", _retrieve_body(a))
        + _sized("Retrieve", _retrieve_body(b), extra="Connection: close\r\n")
    )
    with _raw(crm) as sock:
        sock.sendall(stream)
        answers = _responses(_read_all(sock))
    assert [status for status, _, _ in answers] == [200, 200, 200, 200]
    created = [etree.fromstring(body).findtext(f".//{{{WS}}}CreateResult") for _, _, body in answers[:2]]
    retrieved = [etree.fromstring(body).findtext(f".//{{{WS}}}name") for _, _, body in answers[2:]]
    assert (created, retrieved) == ([a, b], ["first", "second"])
    assert crm.stats()["connections_accepted"] == 1


# -- HTTP/1.0 ---


def test_http10_keep_alive_is_honoured_and_said(crm: MockCrm) -> None:
    with _raw(crm) as sock:
        sock.sendall(_sized("Execute", WHOAMI, version="HTTP/1.0", extra="Connection: keep-alive\r\n"))
        first = b""
        while b"WhoAmIResponse" not in first or not first.endswith(b"</soap:Envelope>"):
            first += sock.recv(65536)
        sock.sendall(_sized("Execute", WHOAMI, version="HTTP/1.0"))
        rest = _read_all(sock)  # no keep-alive asked: the server closes after it
    [(s1, h1, _)] = _responses(first)
    [(s2, h2, _)] = _responses(rest)
    assert (s1, h1["connection"], s2, h2["connection"]) == (200, "keep-alive", 200, "close")
    assert crm.stats()["connections_accepted"] == 1


# -- gzip answers, as IIS dynamic compression gives them ---


def _seed(conn: http.client.HTTPConnection, n: int) -> None:
    for i in range(n):
        assert post(conn, "Create", _create_body(f"Account number {i:04d} of {NAME}")).status == 200


def _retrieve_all(conn: http.client.HTTPConnection, accept: str | None) -> http.client.HTTPResponse:
    query = (
        f'<query xmlns:q="{QRY}" xsi:type="q:QueryExpression"><q:EntityName>account</q:EntityName>'
        '<q:ColumnSet xsi:type="q:AllColumns" /></query>'
    )
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}RetrieveMultiple"'}
    if accept is not None:
        headers["Accept-Encoding"] = accept
    conn.request(
        "POST", PATH, envelope(f'<RetrieveMultiple xmlns="{WS}">{query}</RetrieveMultiple>'), headers
    )
    return conn.getresponse()


@pytest.fixture
def seeded(crm: MockCrm) -> Iterator[http.client.HTTPConnection]:
    conn = connect(crm)
    _seed(conn, 200)
    yield conn
    conn.close()


def test_gzip_answer_when_the_client_accepts_it(seeded: http.client.HTTPConnection, crm: MockCrm) -> None:
    plain = _retrieve_all(seeded, None)
    plain_body = plain.read()
    packed = _retrieve_all(seeded, "gzip, deflate")
    packed_body = packed.read()
    assert plain.getheader("Content-Encoding") is None
    assert (packed.getheader("Content-Encoding"), packed.getheader("Vary")) == ("gzip", "Accept-Encoding")
    assert int(packed.getheader("Content-Length") or 0) == len(packed_body)
    assert gzip.decompress(packed_body) == plain_body
    assert len(packed_body) * 5 < len(plain_body)  # a page of records shrinks several times over
    ents = etree.fromstring(plain_body).findall(f".//{{{WS06}}}BusinessEntity")
    assert len(ents) == 200
    assert crm.stats()["http_features"]["responses_gzip"] == 1


@pytest.mark.parametrize("accept", ["identity", "gzip;q=0", "br", "deflate", "gzip;q=bogus"])
def test_no_gzip_unless_accepted(seeded: http.client.HTTPConnection, accept: str) -> None:
    resp = _retrieve_all(seeded, accept)
    body = resp.read()
    assert resp.getheader("Content-Encoding") is None
    assert body.startswith(b"<?xml")


@pytest.mark.parametrize("accept", ["GZIP", "x-gzip", "*", "deflate, gzip;q=0.5"])
def test_gzip_spellings(seeded: http.client.HTTPConnection, accept: str) -> None:
    resp = _retrieve_all(seeded, accept)
    assert resp.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(resp.read()).startswith(b"<?xml")


def test_small_answers_are_not_compressed(crm: MockCrm) -> None:
    conn = connect(crm)
    try:
        conn.request(
            "POST",
            PATH,
            WHOAMI,
            {"Content-Type": "text/xml", "SOAPAction": f'"{ACTION}Execute"', "Accept-Encoding": "gzip"},
        )
        resp = conn.getresponse()
        assert (resp.status, resp.getheader("Content-Encoding")) == (200, None)
        assert b"WhoAmIResponse" in resp.read()
    finally:
        conn.close()
    assert "responses_gzip" not in crm.stats()["http_features"]
