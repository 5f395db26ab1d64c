"""Drive headless Chromium over the DevTools protocol: load a page, read what it shows, take a screenshot.

Used by the report's browser test, and to make the README's screenshot::

    python -m tests.chromium report.html docs/report-example.png

Needs Debian's ``chromium`` and ``websocket-client``; ``find_chromium()`` returns None without the browser.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PageVisit", "find_chromium", "visit"]


def find_chromium() -> str | None:
    """The Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageVisit:
    """What the browser saw: title, images ``(complete, naturalWidth, naturalHeight, alt)``, console errors,
    requests that were not ``file:`` or ``data:``, and the screenshot's PNG bytes."""

    title: str = ""
    images: list[tuple[bool, int, int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fetches: list[str] = field(default_factory=list)
    png: bytes = b""


class _Cdp:
    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            self.events.append(msg)

    def wait_for(self, method: str, deadline: float) -> None:
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} from Chromium")
            self.events.append(json.loads(self.ws.recv()))


@contextlib.contextmanager
def _browser(binary: str, width: int) -> Iterator[_Cdp]:
    with tempfile.TemporaryDirectory(prefix="crmload-chromium-") as profile:
        args = [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ]
        args += ["--remote-debugging-port=0", f"--user-data-dir={profile}", f"--window-size={width},900"]
        proc = subprocess.Popen([*args, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text().strip():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("Chromium did not open its DevTools port")
                time.sleep(0.1)
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
                targets = json.load(answer)
            page = next(t for t in targets if t.get("type") == "page")
            cdp = _Cdp(page["webSocketDebuggerUrl"])
            try:
                yield cdp
            finally:
                cdp.ws.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_IMAGES = (
    "JSON.stringify([...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt]))"
)


def visit(html: Path, *, width: int = 1400, binary: str | None = None) -> PageVisit:
    """Load ``html`` (a file) in headless Chromium and report what it saw, with a full-page screenshot."""
    binary = binary or find_chromium()
    if binary is None:
        raise RuntimeError("no Chromium on this machine")
    seen = PageVisit()
    with _browser(binary, width) as cdp:
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.call(f"{domain}.enable")
        cdp.call("Page.navigate", url=html.resolve().as_uri())
        cdp.wait_for("Page.loadEventFired", time.monotonic() + 60)
        seen.title = cdp.call("Runtime.evaluate", expression="document.title")["result"]["value"]
        raw = cdp.call("Runtime.evaluate", expression=_IMAGES)["result"]["value"]
        seen.images = [tuple(i) for i in json.loads(raw)]  # type: ignore[misc]
        height = int(
            cdp.call("Runtime.evaluate", expression="document.documentElement.scrollHeight")["result"][
                "value"
            ]
        )
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        seen.png = base64.b64decode(cdp.call("Page.captureScreenshot", format="png")["data"])
        for e in cdp.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                seen.errors.append(json.dumps(params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                seen.errors.append(json.dumps(params.get("exceptionDetails", {})))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                seen.errors.append(str(params["entry"].get("text")))
            elif method == "Network.requestWillBeSent":
                url = str(params.get("request", {}).get("url", ""))
                if not url.startswith(("file:", "data:", "about:")):
                    seen.fetches.append(url)
    return seen


if __name__ == "__main__":
    page_visit = visit(Path(sys.argv[1]), width=int(os.environ.get("WIDTH", "1400")))
    Path(sys.argv[2]).write_bytes(page_visit.png)
    print(
        f"{sys.argv[2]}: {len(page_visit.png)} bytes; images {page_visit.images}; errors {page_visit.errors}"
    )
