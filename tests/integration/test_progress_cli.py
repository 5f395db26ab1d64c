"""Issue 15, acceptance 1-2: the bar in a pseudo-terminal shows a percentage and an ETA from its first frame;
with stderr to a file, plain progress lines appear there periodically.

Both run the real CLI in a subprocess; they check the rendered text, never how long anything took.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crmload.mock import MockCrm

REPO = Path(__file__).resolve().parents[2]
FIGURES = re.compile(r"\d+ %, [\d,]+ rows, [\d,.]+ rows/s, ETA \d\d:\d\d:\d\d")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals and signals")


def _accounts(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("accountnumber,name,revenue\n")
        f.writelines(f'A-{i:06d},"Account {i}, Ltd",{i}.50\n' for i in range(1, n + 1))
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRMLOAD_")}


def test_bar_in_a_pty_shows_percent_and_eta_from_the_first_frame(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    src = _accounts(tmp_path / "accounts.csv", 100_000)
    args = [sys.executable, "-m", "crmload", "import", str(src), "--entity", "account"]
    args += ["--key", "accountnumber"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a 160-column terminal, then the CLI (embedded mock)
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
            os.chdir(REPO)
            os.execve(sys.executable, args, _env())  # noqa: S606 - our own interpreter, no shell
        finally:
            os._exit(127)
    seen = b""
    frame = None
    deadline = time.monotonic() + 120
    try:
        while frame is None and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            # A frame is "\r" + text + "erase to the end of the line".
            m = re.search(rb"\r([^\r\n]*?)\x1b\[K", seen)
            frame = m.group(1).decode("utf-8") if m else None
    finally:
        os.kill(pid, signal.SIGINT)  # enough seen: stop the run (Ctrl-C), calls in flight finish
        end = time.monotonic() + 60
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 1.0)
            try:
                if ready and not os.read(fd, 65536):
                    break
            except OSError:
                break
        os.waitpid(pid, 0)
        os.close(fd)
    assert frame is not None, seen.decode("utf-8", "replace")[-2000:]
    assert FIGURES.search(frame), frame
    assert frame.startswith("[")  # the picture, on a terminal wide enough for it
    for word in ("rejected", "retries", "throttled"):
        assert word in frame


def test_stderr_to_a_file_gets_periodic_progress_lines(tmp_path: Path, crm: MockCrm) -> None:
    src = _accounts(tmp_path / "accounts.csv", 1_000)
    err = tmp_path / "stderr.log"
    args = [sys.executable, "-m", "crmload", "import", str(src), "--entity", "account"]
    # 1,000 rows at 400 calls/s take at least 2.5 s whatever the machine: several 0.3 s intervals.
    args += ["--key", "accountnumber", "--url", crm.url, "--org", "Contoso", "--rate", "400"]
    args += ["--journal", str(tmp_path / "j.sqlite"), "--progress-interval", "0.3"]
    with err.open("w") as stderr:
        done = subprocess.run(
            args,
            check=False,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=REPO,
            env=_env(),
            timeout=300,
        )
    assert done.returncode == 0, err.read_text()
    lines = [line for line in err.read_text().splitlines() if "crmload: progress:" in line]
    assert len(lines) >= 2, err.read_text()
    for line in lines:
        assert FIGURES.search(line), line
        assert re.search(r"; \d+ rejected, \d+ retries, \d+ throttled", line), line
    assert "\r" not in err.read_text()  # no bar in a file
    assert len(crm.records("account")) == 1_000
