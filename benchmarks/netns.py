"""Throwaway Linux network namespaces for benchmark runs: a fresh port space and TIME_WAIT table per run.

Each namespace has only ``lo``; the mock and the contender both run inside it with ``ip netns exec``, so a run
cannot exhaust the host's ports nor be disturbed by other processes' sockets.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

log = logging.getLogger(__name__)

_serial = itertools.count()

#: The Windows-2009-like wall: about 990 local ports and no TIME_WAIT reuse; Linux TIME_WAIT is a fixed 60 s.
WALL_SYSCTLS = {"net.ipv4.ip_local_port_range": "40000 40989", "net.ipv4.tcp_tw_reuse": "0"}
WALL_PORTS = 990
TIME_WAIT_S = 60.0


def available() -> tuple[bool, str]:
    """Return whether namespaces can be made here, and why not when they cannot."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return False, "the `ip` command (iproute2) is not installed"
    probe = f"crmbench-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return False, f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return True, ""


@contextmanager
def namespace(sysctls: dict[str, str] | None = None) -> Iterator[str]:
    """Create a namespace with ``lo`` up and the given sysctls; yield its name; delete it afterwards."""
    name = f"crmbench-{os.getpid()}-{next(_serial)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        for key, value in (sysctls or {}).items():
            subprocess.run(
                ["ip", "netns", "exec", name, "sysctl", "-q", "-w", f"{key}={value}"],
                check=True,
                capture_output=True,
            )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def wrap(argv: Sequence[str], ns: str | None) -> list[str]:
    """Return ``argv`` prefixed to run inside namespace ``ns`` (unchanged when ``ns`` is None)."""
    return ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
