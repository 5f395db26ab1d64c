"""A small HTTP/1.1 reader and writer for the mock: Content-Length bodies, keep-alive, one ``sendall`` per
reply."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate

__all__ = ["BadRequest", "Headers", "Request", "TooLarge", "read_request", "response_bytes"]

_MAX_HEAD = 64 * 1024
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
    """The body is over the limit; ``length`` is the announced Content-Length, ``request`` the head."""

    def __init__(self, request: Request, length: int) -> None:
        super().__init__(f"body of {length} bytes is over the limit")
        self.request = request
        self.length = length


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

    Raises ``BadRequest`` for unreadable input and ``TooLarge`` (before reading the body) for an oversized
    one.
    """
    head = _head(sock, buf)
    if head is None:
        return None
    req = _parse_head(head)
    if "chunked" in req.headers.get("transfer-encoding", "").lower():
        raise BadRequest(411, "chunked request bodies are not supported; send Content-Length")
    try:
        length = int(req.headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest(400, "bad Content-Length") from None
    if length < 0:
        raise BadRequest(400, "bad Content-Length")
    if length > max_body:
        raise TooLarge(req, length)
    if length and req.headers.get("expect", "").lower() == "100-continue" and len(buf) < length:
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    while len(buf) < length:
        chunk = sock.recv(max(65536, length - len(buf)))
        if not chunk:
            raise BadRequest(400, "connection closed inside a request body")
        buf += chunk
    req.body = bytes(buf[:length])
    del buf[:length]
    return req


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


def response_bytes(
    status: int,
    body: bytes,
    content_type: str,
    *,
    keep_alive: bool,
    extra: Iterable[tuple[str, str]] = (),
) -> bytes:
    """Return a whole HTTP/1.1 response (head and body) as one buffer, IIS-flavoured headers included."""
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
        "Cache-Control: private",
        f"Content-Type: {content_type}",
        "Server: Microsoft-IIS/6.0",
        "X-AspNet-Version: 2.0.50727",
        f"Date: {_http_date()}",
        f"Content-Length: {len(body)}",
    ]
    lines.extend(f"{k}: {v}" for k, v in extra)
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
