"""A small HTTP/1.1 reader and writer for the mock: Content-Length and chunked bodies, ``Expect:
100-continue``, keep-alive and pipelining (leftover bytes stay in the connection's buffer), gzip answers for
clients that accept them, one ``sendall`` per reply.

Why hand-written and not h11: measured with ``benchmarks/mock_throughput.py`` (see docs/INTERNALS.md "Mock"),
h11 cost the mock more than the 10 % of throughput the issue allowed.
"""

from __future__ import annotations

import re
import socket
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate

__all__ = [
    "GZIP_MIN_BYTES",
    "BadRequest",
    "Headers",
    "Request",
    "TooLarge",
    "accepts_gzip",
    "read_request",
    "response_bytes",
]

_MAX_HEAD = 64 * 1024
_MAX_LINE = 4096
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
#: Smaller answers go out as they are: IIS's minFileSizeForComp default, and below it gzip saves nothing.
GZIP_MIN_BYTES = 2700
_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers (a repeated header keeps its last value)."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = list(items)
        self._map = {k.lower(): v for k, v in self._items}

    def __getitem__(self, key: str) -> str:
        return self._map[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def items_raw(self) -> list[tuple[str, str]]:
        """Return the headers as received, in order and with repeats."""
        return list(self._items)


@dataclass(slots=True)
class Request:
    """One parsed request."""

    method: str
    target: str
    version: str
    headers: Headers
    body: bytes = b""
    keep_alive: bool = True
    path: str = field(init=False)

    def __post_init__(self) -> None:
        self.path = self.target.split("?", 1)[0]


class BadRequest(Exception):
    """A request the mock cannot read; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TooLarge(Exception):
    """The body is over the limit; ``length`` is the announced Content-Length (or, chunked, the bytes so far),
    ``request`` the head; ``drainable`` is False when the rest cannot be skipped by length (chunked)."""

    def __init__(self, request: Request, length: int, *, drainable: bool = True) -> None:
        super().__init__(f"body of {length} bytes is over the limit")
        self.request = request
        self.length = length
        self.drainable = drainable


def _head(sock: socket.socket, buf: bytearray) -> bytes | None:
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end])
            del buf[: end + 4]
            return head
        if len(buf) > _MAX_HEAD:
            raise BadRequest(400, "request head too large")
        chunk = sock.recv(65536)
        if not chunk:
            if buf.strip():
                raise BadRequest(400, "connection closed inside a request head")
            return None
        buf += chunk


def _parse_head(head: bytes) -> Request:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        raise BadRequest(400, "malformed request line") from None
    items = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(400, "malformed header line")
        items.append((name.strip(), value.strip()))
    headers = Headers(items)
    conn = headers.get("connection", "").lower()
    keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
    return Request(method=method, target=target, version=version, headers=headers, keep_alive=keep)


def read_request(sock: socket.socket, buf: bytearray, max_body: int) -> Request | None:
    """Read one request from ``sock`` (leftover bytes stay in ``buf``); None on a clean end of stream.

    Raises ``BadRequest`` for unreadable input and ``TooLarge`` (before reading the body, or as soon as a
    chunked body passes the limit) for an oversized one.
    """
    head = _head(sock, buf)
    if head is None:
        return None
    req = _parse_head(head)
    coding = req.headers.get("transfer-encoding")
    if coding is not None:
        # RFC 9112 6.1: Transfer-Encoding overrides Content-Length; chunked is the only coding clients send.
        if [c.strip().lower() for c in coding.split(",") if c.strip()] != ["chunked"]:
            raise BadRequest(501, f"transfer coding {coding!r} is not supported")
        if not buf:
            _continue(sock, req)
        req.body = _read_chunked(sock, buf, max_body, req)
        return req
    try:
        length = int(req.headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest(400, "bad Content-Length") from None
    if length < 0:
        raise BadRequest(400, "bad Content-Length")
    if length > max_body:
        raise TooLarge(req, length)
    if length and len(buf) < length:
        _continue(sock, req)
    while len(buf) < length:
        chunk = sock.recv(max(65536, length - len(buf)))
        if not chunk:
            raise BadRequest(400, "connection closed inside a request body")
        buf += chunk
    req.body = bytes(buf[:length])
    del buf[:length]
    return req


def _continue(sock: socket.socket, req: Request) -> None:
    """Answer ``Expect: 100-continue`` before the body is read (only when the client still waits for it)."""
    if req.headers.get("expect", "").lower() == "100-continue" and req.version == "HTTP/1.1":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")


def _fill(sock: socket.socket, buf: bytearray) -> None:
    chunk = sock.recv(65536)
    if not chunk:
        raise BadRequest(400, "connection closed inside a chunked request body")
    buf += chunk


def _line(sock: socket.socket, buf: bytearray) -> bytes:
    """Return the next CRLF-terminated line of a chunked body (without the CRLF)."""
    while (end := buf.find(b"\r\n")) < 0:
        if len(buf) > _MAX_LINE:
            raise BadRequest(400, "chunk size or trailer line too long")
        _fill(sock, buf)
    line = bytes(buf[:end])
    del buf[: end + 2]
    return line


def _read_chunked(sock: socket.socket, buf: bytearray, max_body: int, req: Request) -> bytes:
    """Read a chunked body (RFC 9112 7.1): hex sizes with optional extensions, then trailers, which are
    dropped."""
    body = bytearray()
    while True:
        size_text = _line(sock, buf).split(b";", 1)[0].strip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise BadRequest(400, "bad chunk size")
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > max_body:
            raise TooLarge(req, len(body) + size, drainable=False)
        while len(buf) < size + 2:
            _fill(sock, buf)
        if buf[size : size + 2] != b"\r\n":
            raise BadRequest(400, "chunk data not followed by CRLF")
        body += buf[:size]
        del buf[: size + 2]
    trailers = 0
    while _line(sock, buf):
        trailers += 1
        if trailers > 100:
            raise BadRequest(400, "too many trailer fields")
    return bytes(body)


def drain(sock: socket.socket, buf: bytearray, length: int, limit: int) -> bool:
    """Read and drop up to ``length`` body bytes (at most ``limit``); True when all of it was drained."""
    if length > limit:
        return False
    remaining = length - len(buf)
    buf.clear()
    while remaining > 0:
        chunk = sock.recv(min(1 << 20, remaining))
        if not chunk:
            return False
        remaining -= len(chunk)
    return True


_date_cache: list[object] = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True)
    return str(_date_cache[1])


def accepts_gzip(headers: Mapping[str, str]) -> bool:
    """True when ``Accept-Encoding`` allows gzip (``gzip``, ``x-gzip`` or ``*``, with no ``q=0``)."""
    value = headers.get("accept-encoding")
    if not value:
        return False
    for item in value.lower().split(","):
        coding, _, params = item.partition(";")
        if coding.strip() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip()
        if not q.startswith("q="):
            return True
        try:
            return float(q[2:]) > 0
        except ValueError:
            return False
    return False


def _gzip(body: bytes) -> bytes:
    # Level 1: the mock answers many requests per second, and level 1 already shrinks SOAP several times over
    # (IIS's dynamicCompressionLevel defaults to 0, its lowest, for the same reason).
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    return packer.compress(body) + packer.flush()


def response_bytes(
    status: int,
    body: bytes,
    content_type: str,
    *,
    keep_alive: bool,
    extra: Iterable[tuple[str, str]] = (),
    gzip: bool = False,
) -> bytes:
    """Return a whole HTTP/1.1 response (head and body) as one buffer, IIS-flavoured headers included.

    ``gzip=True`` (the client accepts it) compresses a body of at least ``GZIP_MIN_BYTES``, as IIS dynamic
    compression does.
    """
    packed = gzip and len(body) >= GZIP_MIN_BYTES
    if packed:
        body = _gzip(body)
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
        "Cache-Control: private",
        f"Content-Type: {content_type}",
        "Server: Microsoft-IIS/6.0",
        "X-AspNet-Version: 2.0.50727",
        f"Date: {_http_date()}",
        f"Content-Length: {len(body)}",
    ]
    if packed:
        lines.append("Content-Encoding: gzip")
        lines.append("Vary: Accept-Encoding")
    lines.extend(f"{k}: {v}" for k, v in extra)
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
