"""Throwaway Linux network namespaces for tests: a private port range and TIME_WAIT table per scenario.

TIME_WAIT sockets belong to a namespace, so each scenario gets a fresh one and the host's ports are never
touched. Needs root and iproute2; ``unavailable_reason()`` says why not, for ``pytest.skip``.

Example::

    with Netns(sysctls=WALL_SYSCTLS) as ns:
        result = ns.run_python("print(1)")
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["WALL_SYSCTLS", "Netns", "unavailable_reason"]

#: The 100-port wall of DESIGN.md: 40000-40099 and no TIME_WAIT reuse (Linux TIME_WAIT is a fixed 60 s).
WALL_SYSCTLS = {"net.ipv4.ip_local_port_range": "40000 40099", "net.ipv4.tcp_tw_reuse": "0"}

_serial = itertools.count()
_REPO = Path(__file__).resolve().parent.parent


def unavailable_reason() -> str | None:
    """Return why namespaces cannot be made here, or None when they can."""
    if sys.platform != "linux":
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "iproute2 `ip` is not installed"
    probe = f"crmtest-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True, check=False)
    return None


class Netns:
    """A network namespace with only ``lo`` up and the given sysctls; deleted on exit.

    Args:
        sysctls: ``{"net.ipv4.ip_local_port_range": "40000 40099", ...}`` set inside the namespace.
        prefix: namespace name prefix; the pid and a serial number make it unique.
    """

    def __init__(self, sysctls: Mapping[str, str] | None = None, prefix: str = "crmtest") -> None:
        self.name = f"{prefix}-{os.getpid()}-{next(_serial)}"
        self.sysctls = dict(sysctls or {})

    def __enter__(self) -> Netns:
        self._ip("netns", "add", self.name)
        try:
            self.exec(["ip", "link", "set", "lo", "up"])
            for key, value in self.sysctls.items():
                self.exec(["sysctl", "-q", "-w", f"{key}={value}"])
        except BaseException:
            self._ip("netns", "delete", self.name)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._ip("netns", "delete", self.name)

    def exec(self, argv: list[str], *, timeout: float = 60.0, env: Mapping[str, str] | None = None) -> str:
        """Run ``argv`` inside the namespace; return its stdout; raise with its stderr if it fails."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed in {self.name} ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def run_python(self, code: str, *, timeout: float = 120.0) -> str:
        """Run a Python snippet inside the namespace (repo on sys.path); return its stdout."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_REPO), os.environ.get("PYTHONPATH", "")])}
        return self.exec([sys.executable, "-c", textwrap.dedent(code)], timeout=timeout, env=env)

    def run_json(self, code: str, *, timeout: float = 120.0) -> Any:
        """Run a snippet whose last stdout line is JSON; return it parsed."""
        out = self.run_python(code, timeout=timeout).strip().splitlines()
        return json.loads(out[-1])

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], capture_output=True, check=False, timeout=30)
