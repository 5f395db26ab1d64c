"""Issue 16 #5: answers that prove "never applied" stop the run with every row pending, never in doubt.

Five real servers on real sockets: the mock's wrong path (404), and a tiny HTTP server that answers a 302, an
HTML login page with 200, an HTML error page with 500, and plain HTTP to a TLS ClientHello (as http.sys does).
Unkeyed creates are the case that used to go in doubt; each scenario runs without the preflight (the loader's
own classification) and with it (nothing journalled at all).
"""

from __future__ import annotations

import http.server
import json
import socket
import sqlite3
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmload.cli import main
from crmload.client import CrmClient
from crmload.load import Loader
from crmload.mock import MockCrm
from crmload.retry import RetryPolicy
from crmload.transport import Timeout

ROWS = 40
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>user</form></body></html>"
ERROR_PAGE = b"<html><head><title>Runtime Error</title></head><body><h1>Server Error in '/' Application."


class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers every POST as the server's ``mode`` says; in "proxy" mode it relays to the mock."""

    protocol_version = "HTTP/1.1"
    server: _StubServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts += 1
        mode = self.server.mode
        if mode == "proxy":
            self._relay(body)
        elif mode == "redirect":
            self._answer(302, b"", "text/html", [("Location", "https://login.example.com/adfs/ls")])
        elif mode == "login":
            self._answer(200, LOGIN_PAGE, "text/html; charset=utf-8")
        else:
            self._answer(500, ERROR_PAGE, "text/html; charset=utf-8")

    def _relay(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "soapaction")}
        # The target is the test's own mock, an http:// URL.
        request = urllib.request.Request(self.server.target, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
                self._answer(reply.status, reply.read(), reply.headers["Content-Type"])
        except urllib.error.HTTPError as err:
            self._answer(err.code, err.read(), err.headers["Content-Type"])

    def _answer(
        self, status: int, body: bytes, ctype: str, extra: list[tuple[str, str]] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra or []:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _StubServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    mode = "login"
    target = ""
    posts = 0


@pytest.fixture
def stub(crm: MockCrm) -> Iterator[_StubServer]:
    server = _StubServer(("127.0.0.1", 0), _Stub)
    server.target = crm.url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A port that answers anything, a TLS ClientHello too, with ``400 Bad Request`` (as http.sys does)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()


def _csv(tmp_path: Path) -> Path:
    src = tmp_path / "in.csv"
    src.write_text("name\n" + "".join(f"Acc {i}\n" for i in range(1, ROWS + 1)), encoding="utf-8")
    return src


def _import(
    capsys: pytest.CaptureFixture[str], src: Path, url: str, *extra: str
) -> tuple[int, dict[str, Any], str]:
    argv = ["import", str(src), "--entity", "account", "--url", url, "--org", "Contoso"]
    code = main([*argv, "--rate", "unlimited", "--workers", "4", "--json", "--no-progress", *extra])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def _journal_states(src: Path) -> dict[str, int]:
    """Rows per (state, attempts > 0) in the run's journal, read straight from SQLite."""
    with sqlite3.connect(f"{src}.crmload.sqlite") as db:
        rows = db.execute("SELECT state, attempts > 0, count(*) FROM rows GROUP BY 1, 2").fetchall()
    return {f"{state}{'+sent' if sent else ''}": n for state, sent, n in rows}


def _url(scenario: str, crm: MockCrm, stub: _StubServer, tls_port: int) -> str:
    if scenario == "404":
        return crm.base_url + "/wrong"
    if scenario == "tls":
        return f"https://127.0.0.1:{tls_port}/MSCRMServices/2007/CrmService.asmx"
    stub.mode = {"302": "redirect", "html200": "login", "html500": "error"}[scenario]
    return f"http://127.0.0.1:{stub.server_address[1]}/MSCRMServices/2007/CrmService.asmx"


SCENARIOS = {
    "404": "HTTP 404 before any SOAP processing",
    "302": "HTTP 302 redirect to https://login.example.com/adfs/ls",
    "html200": "HTTP 200 answered with a non-SOAP body",
    "html500": "HTTP 500 answered with a non-SOAP body",
    "tls": "TLS handshake failed",
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_never_applied_answer_stops_the_run_with_every_row_pending(  # noqa: PLR0917
    crm: MockCrm,
    stub: _StubServer,
    plain_http_port: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    scenario: str,
) -> None:
    src = _csv(tmp_path)
    url = _url(scenario, crm, stub, plain_http_port)
    code, summary, err = _import(capsys, src, url, "--no-preflight")
    assert code == 1
    assert SCENARIOS[scenario] in err
    assert (summary["in_doubt"], summary["rejected"], summary["done"]) == (0, 0, 0)
    # Every journalled row is pending, and none is marked as possibly sent: a resume sends them all again.
    states = _journal_states(src)
    assert set(states) == {"pending"}, states
    assert not (src.parent / "in.rejects.csv").exists()
    assert crm.stats()["records_by_entity"].get("account", 0) == 0


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_preflight_names_the_cause_and_journals_nothing(  # noqa: PLR0917
    crm: MockCrm,
    stub: _StubServer,
    plain_http_port: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    scenario: str,
) -> None:
    src = _csv(tmp_path)
    code, _, err = _import(capsys, src, _url(scenario, crm, stub, plain_http_port))
    assert code == 1
    assert "preflight:" in err
    assert SCENARIOS[scenario] in err
    assert ("TLS with" in err) == (scenario == "tls")
    assert not Path(f"{src}.crmload.sqlite").exists()
    if scenario in ("302", "html200", "html500"):
        assert stub.posts == 1  # one WhoAmI, not retried: every attempt would get the same answer


def test_resume_after_the_fix_sends_every_pending_row_once(
    crm: MockCrm, stub: _StubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _csv(tmp_path)
    url = f"http://127.0.0.1:{stub.server_address[1]}/MSCRMServices/2007/CrmService.asmx"
    stub.mode = "login"
    code, summary, _ = _import(capsys, src, url, "--no-preflight")
    assert (code, summary["in_doubt"], summary["done"]) == (1, 0, 0)
    stub.mode = "proxy"  # the front end is fixed: requests reach CRM again
    code, summary, err = _import(capsys, src, url, "--resume")
    assert code == 0, err
    assert (summary["done"], summary["in_doubt"], summary["read"]) == (ROWS, 0, ROWS)
    assert len(crm.records("account")) == ROWS


def test_tls_handshake_that_times_out_is_never_sent_and_never_in_doubt(crm: MockCrm) -> None:
    # The mock waits for an HTTP head that a ClientHello never completes: the handshake times out.
    url = crm.url.replace("http://", "https://")
    policy = RetryPolicy(max_attempts=2, backoff_base_s=0.0, backoff_max_s=0.0)
    with CrmClient(url, org="Contoso", retry=policy, timeout=Timeout(connect_s=0.3)) as client:
        summary = Loader(client, "account", workers=2).run([{"name": f"A {i}"} for i in range(10)])
        stats = client.stats()
    assert summary.fatal is not None
    assert "TLS handshake did not complete" in summary.fatal
    assert (summary.in_doubt, summary.rejected, summary.done) == (0, 0, 0)
    assert summary.pending == summary.read
    assert stats["retries_by_cause"]["connect"] >= 1  # never sent, so retried like any connect failure
    assert crm.stats()["requests"] == 0
