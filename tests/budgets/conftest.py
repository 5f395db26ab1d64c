"""A real ``redis-server`` for the shared-budget tests, started on a free 127.0.0.1 port in a temp dir.

Tests skip, with the reason, when the binary or redis-py is missing (``.ci/run`` installs the Debian
``redis-server``; ``pip install -e '.[test]'`` brings redis-py).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; ``kill()`` and ``start()`` again keep the same port (a restart)."""

    def __init__(self, binary: str, workdir: Path, *, password: str | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        args += ["--save", "", "--appendonly", "no", "--logfile", str(self.workdir / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            if self.proc.poll() is not None:
                log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
            # With a password PING answers -NOAUTH: then accepting connections is enough.
            if _ping(self.port) or (self.password and _listening(self.port)):
                return
            time.sleep(0.01)
        raise RuntimeError("redis-server did not answer PING within 5 s")

    def kill(self) -> None:
        """SIGKILL: the state is gone, as when Redis crashes (no save, no append-only file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _binary() -> str:
    pytest.importorskip("redis", reason="redis-py is not installed (pip install -e '.[test]')")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does it)")
    return binary


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test, stopped after it."""
    server = RedisServer(_binary(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[type[RedisServer]]:
    """``redis_factory(password=...)`` style: build more servers (each stopped after the test)."""
    made: list[RedisServer] = []
    binary = _binary()

    class Factory(RedisServer):
        def __init__(self, *, password: str | None = None) -> None:
            workdir = tmp_path / f"redis{len(made)}"
            workdir.mkdir()
            super().__init__(binary, workdir, password=password)
            made.append(self)
            self.start()

    try:
        yield Factory
    finally:
        for server in made:
            server.kill()
