"""The benchmark harness: a mock in its own process, contenders as subprocesses, CPU from rusage, raw JSON.

Nothing here knows a scenario. ``Mock`` starts ``python -m crmload mock`` (optionally inside a network
namespace) and talks to its ``/_mock`` endpoints; ``run_process`` runs one command and measures its wall time,
CPU (``os.wait4`` rusage, so children count exactly) and optionally its RSS over time; ``interleave`` orders
repeated runs A B C A B C so a machine that gets busier mid-run slows every contender alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import netns

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PYTHON = sys.executable
#: How the mock server is started; its first stdout line is its endpoint URL.
MOCK_ARGV = [PYTHON, "-m", "crmload", "mock"]
#: How the mock server is started; its first stdout line is its endpoint URL.
MOCK_ARGV = [PYTHON, "-m", "crmload", "mock"]

# Reads a /_mock endpoint from inside a namespace. It binds an explicit source port below the namespace's
# ephemeral range, so it still connects after a contender has used up every ephemeral port.
_FETCH = """
import http.client, random, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
body = sys.argv[2].encode() if len(sys.argv) > 2 else None
for port in random.sample(range(20000, 30000), 50):
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=("127.0.0.1", port))
    try:
        method = "POST" if body is not None else "GET"
        conn.request(method, url.path, body, {"Content-Type": "application/json"})
        sys.stdout.write(conn.getresponse().read().decode())
        break
    except OSError:
        continue
    finally:
        conn.close()
"""


def child_env() -> dict[str, str]:
    """The environment for child processes: this checkout first on the path, whatever their directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class ProcResult:
    """What one subprocess did: exit code, output, wall time, CPU seconds, peak RSS and RSS samples."""

    rc: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_user_s: float
    cpu_sys_s: float
    maxrss_kb: int
    rss_series: list[tuple[float, int]] = field(default_factory=list)

    @property
    def cpu_s(self) -> float:
        """User plus system CPU seconds of the process."""
        return self.cpu_user_s + self.cpu_sys_s

    def json_line(self) -> dict[str, Any]:
        """Return the last JSON object the process printed on stdout, or raise with its stderr."""
        for raw in reversed(self.stdout.strip().splitlines()):
            line = raw.strip()
            if line.startswith("{"):
                return dict(json.loads(line))
        raise RuntimeError(f"no JSON on stdout (rc={self.rc}); stderr tail: {self.stderr[-1500:]}")


def run_process(
    argv: Sequence[str],
    *,
    ns: str | None = None,
    timeout_s: float = 1200.0,
    sample_rss_s: float = 0.0,
    cwd: Path = ROOT,
) -> ProcResult:
    """Run ``argv`` (inside ``ns`` if given) to completion and measure it with ``wait4``."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(netns.wrap(argv, ns), stdout=out, stderr=err, cwd=cwd, env=child_env())
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_watchdog, args=(proc.pid, timeout_s, stop), daemon=True)]
        if sample_rss_s:
            threads.append(
                threading.Thread(
                    target=_sample_rss, args=(proc.pid, sample_rss_s, t0, samples, stop), daemon=True
                )
            )
        for t in threads:
            t.start()
        # `ip netns exec` execs in place, so the pid we wait for is the measured program itself.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        for t in threads:
            t.join()
        out.seek(0)
        err.seek(0)
        return ProcResult(
            rc=proc.returncode,
            stdout=out.read(),
            stderr=err.read(),
            wall_s=wall,
            cpu_user_s=usage.ru_utime,
            cpu_sys_s=usage.ru_stime,
            maxrss_kb=usage.ru_maxrss,
            rss_series=samples,
        )


def _watchdog(pid: int, timeout_s: float, stop: threading.Event) -> None:
    # A bounded benchmark: a contender that hangs is killed and reported, never waited on forever.
    if not stop.wait(timeout_s):
        log.warning("process %s exceeded %.0f s; killing it", pid, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _sample_rss(
    pid: int, every_s: float, t0: float, out: list[tuple[float, int]], stop: threading.Event
) -> None:
    while not stop.wait(every_s):
        rss = proc_rss(pid)
        if rss is None:
            return
        out.append((round(time.monotonic() - t0, 3), rss))


def proc_rss(pid: int) -> int | None:
    """Resident set size of ``pid`` in bytes (``/proc``, else psutil), or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None
    except FileNotFoundError:
        return None
    except OSError:
        pass
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) ``pid`` has used so far (``/proc``, else psutil)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        import psutil

        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)


class Mock:
    """A ``python -m crmload mock`` server in its own process, optionally inside a network namespace."""

    def __init__(self, args: Sequence[str] = (), *, ns: str | None = None) -> None:
        self.ns = ns
        self._errlog = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the server
        argv = [*MOCK_ARGV, "--port", "0", *args]
        self.proc = subprocess.Popen(
            netns.wrap(argv, ns),
            stdout=subprocess.PIPE,
            stderr=self._errlog,
            text=True,
            cwd=ROOT,
            env=child_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http"):
            self.proc.kill()
            self.proc.wait()
            self._errlog.seek(0)
            detail = self._errlog.read()[-1500:]
            self.stop()
            raise RuntimeError(f"mock did not print its URL: {line!r} {detail}")
        self.url = line
        self.base = line.split("/MSCRMServices")[0] if "/MSCRMServices" in line else line.rstrip("/")
        # Keep draining stdout so a chatty mock never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def _call(self, path: str, body: str | None = None) -> str:
        url = self.base + path
        if self.ns is None:
            data = body.encode() if body is not None else None
            # The URL is our own mock's http:// address, never user input.
            req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})  # noqa: S310
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                return str(resp.read().decode())
        argv = [PYTHON, "-c", _FETCH, url] + ([body] if body is not None else [])
        res = subprocess.run(
            netns.wrap(argv, self.ns), capture_output=True, text=True, check=True, timeout=60
        )
        return res.stdout

    def stats(self) -> dict[str, Any]:
        """Return the mock's ``/_mock/stats`` document."""
        return dict(json.loads(self._call("/_mock/stats")))

    def reset(self) -> None:
        """Empty the store and zero the stats."""
        self._call("/_mock/reset", "{}")

    def cpu_s(self) -> float:
        """CPU seconds the mock process has used so far."""
        return proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        """Stop the server process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            with contextlib.suppress(ValueError, OSError):
                self.proc.stdout.close()
        self._errlog.close()


@contextlib.contextmanager
def mock_env(
    mock_args: Sequence[str] = (), *, use_ns: bool = False, sysctls: dict[str, str] | None = None
) -> Iterator[Mock]:
    """Yield a running mock, inside a fresh namespace when ``use_ns`` (then ``mock.ns`` names it)."""
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(netns.namespace(sysctls)) if use_ns else None
        try:
            mock = Mock(mock_args, ns=ns)
        except RuntimeError:
            # One retry: a busy machine can make the server's start-up fail once; a second failure is real.
            log.warning("mock failed to start; retrying once", exc_info=True)
            mock = Mock(mock_args, ns=ns)
        stack.callback(mock.stop)
        yield mock


def stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Return the server-side counts a run added: connections accepted, requests, records per entity."""
    rb, ra = before.get("records_by_entity", {}), after.get("records_by_entity", {})
    return {
        # Minus one: the GET that read ``after`` came in on a connection of its own.
        "connections_accepted": after.get("connections_accepted", 0)
        - before.get("connections_accepted", 0)
        - 1,
        "requests": after.get("requests", 0) - before.get("requests", 0),
        "records_by_entity": {k: ra.get(k, 0) - rb.get(k, 0) for k in ra},
        "connections_peak": after.get("connections_peak"),
        "faults_by_kind": after.get("faults_by_kind"),
    }


def interleave(names: Sequence[Any], reps: int) -> list[tuple[int, Any]]:
    """Return ``(rep, name)`` pairs in the order A B C A B C …, ``reps`` rounds."""
    return [(rep, name) for rep in range(reps) for name in names]


def median(values: Sequence[float | None]) -> float | None:
    """Median of the non-None values, or None."""
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def machine() -> dict[str, Any]:
    """Describe this machine and moment: cores, CPU model, Python, kernel, date, load average."""
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "system": platform.system(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg": list(os.getloadavg()),
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("requests", "urllib3", "zeep", "lxml", "tenacity"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def write_result(out_dir: Path, name: str, doc: dict[str, Any], *, quick: bool, started: float) -> Path:
    """Write one scenario's JSON with the machine description and the load before and after."""
    out_dir.mkdir(parents=True, exist_ok=True)
    full = {
        "scenario": name,
        "quick": quick,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine(),
        **doc,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(full, indent=1, default=str) + "\n")
    return path


def contender_argv(name: str, url: str, count: int, workers: int, *extra: str) -> list[str]:
    """Return the argv that runs library contender ``name`` as its own process."""
    return [
        PYTHON,
        "-m",
        "benchmarks.contenders",
        name,
        "--url",
        url,
        "--count",
        str(count),
        "--workers",
        str(workers),
        *extra,
    ]
