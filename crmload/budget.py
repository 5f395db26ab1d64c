"""Port budget arithmetic and this host's real settings.

A client that opens a connection per call and closes it first leaves one socket in TIME_WAIT per call, and
each holds a local port for the TIME_WAIT period. The host therefore sustains at most ``ports / time_wait_s``
new connections per second before ``connect()`` fails with EADDRINUSE (Windows 10048) or EADDRNOTAVAIL
(Linux 99). ``PortBudget`` is that arithmetic; ``PortBudget.from_host()`` reads the real values.

Host sources:

- **Linux:** ``/proc/sys/net/ipv4/ip_local_port_range`` (ports = hi - lo + 1). TIME_WAIT is fixed at 60 s in
  the kernel (``TCP_TIMEWAIT_LEN``); no sysctl changes it.
- **Windows:** ``MaxUserPort`` and ``TcpTimedWaitDelay`` under
  ``HKLM\\System\\CurrentControlSet\\Services\\Tcpip\\Parameters``, the values the 2009 post tunes.
  Where ``MaxUserPort`` is set the range is the 2009 one, 1025-MaxUserPort; unset means the modern default
  range 49152-65535 (16,384 ports). ``TcpTimedWaitDelay`` unset means the modern default of 120 s. (Vista
  and later size the range with ``netsh int ipv4 set dynamicport`` and may ignore ``MaxUserPort``; the
  registry is what this module can read without a subprocess.)
- **macOS and others:** the IANA range 49152-65535 and 30 s (macOS ``net.inet.tcp.msl`` is 15,000 ms, and
  TIME_WAIT is 2 x MSL). These are defaults, not read from the host.
"""

from __future__ import annotations

import logging
import math
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from crmload.errors import ConfigError

__all__ = [
    "DEFAULT_PORT_BUDGET",
    "PortBudget",
    "count_time_wait",
    "tuned_budget",
    "tuning_advice",
    "tuning_commands",
]

log = logging.getLogger(__name__)

LINUX_PORT_RANGE_PATH = "/proc/sys/net/ipv4/ip_local_port_range"
LINUX_TIME_WAIT_S = 60.0
LINUX_DEFAULT_RANGE = (32768, 60999)
TCP_TABLE_PATHS = ("/proc/net/tcp", "/proc/net/tcp6")
TCP_STATE_TIME_WAIT = "06"

WINDOWS_TCPIP_KEY = r"SYSTEM\CurrentControlSet\Services\Tcpip\Parameters"
#: The 2009 range starts here; ``MaxUserPort`` is its inclusive upper end.
WINDOWS_LEGACY_FIRST_PORT = 1025
WINDOWS_MODERN_RANGE = (49152, 65535)
WINDOWS_MODERN_TIME_WAIT_S = 120.0
#: The 2009 post's tuning: the highest MaxUserPort Windows accepts, and the lowest TcpTimedWaitDelay.
WINDOWS_TUNED_MAX_USER_PORT = 65534
WINDOWS_TUNED_TIME_WAIT_S = 30

OTHER_RANGE = (49152, 65535)
OTHER_TIME_WAIT_S = 30.0

#: Linux tuning that raises the budget: the widest sensible range (below 1024 are privileged ports).
LINUX_TUNED_RANGE = (1024, 65535)

ReadFile = Callable[[str], str]
#: Returns the DWORD value of a name under the Tcpip Parameters key, or None when it is not set.
ReadRegistry = Callable[[str], int | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class PortBudget:
    """How many new connections per second this host can open without running out of ephemeral ports.

    Args:
        ports: ephemeral ports available for outgoing connections.
        time_wait_s: how long a closed socket holds its port (TIME_WAIT).
        source: where the numbers came from, for humans; ignored by equality.

    Example:
        >>> round(PortBudget().per_second, 2)   # the 2009 Windows defaults: 1025-5000, 240 s
        16.57
        >>> PortBudget(ports=28232, time_wait_s=60).per_second > 470
        True
    """

    ports: int = 3976
    time_wait_s: float = 240.0
    source: str = field(default="Windows 2009 defaults: ports 1025-5000, TIME_WAIT 240 s", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.ports, bool) or not isinstance(self.ports, int) or not 1 <= self.ports <= 65535:
            raise ConfigError(f"PortBudget.ports must be an int in 1..65535, got {self.ports!r}")
        tw = self.time_wait_s
        if isinstance(tw, bool) or not isinstance(tw, (int, float)) or not math.isfinite(tw) or tw <= 0:
            raise ConfigError(f"PortBudget.time_wait_s must be a positive number, got {tw!r}")

    @property
    def per_second(self) -> float:
        """New connections per second the host sustains: ports / TIME_WAIT."""
        return self.ports / self.time_wait_s

    @classmethod
    def from_host(
        cls,
        *,
        system: str | None = None,
        read_file: ReadFile | None = None,
        read_registry: ReadRegistry | None = None,
    ) -> PortBudget:
        """Read this host's real budget.

        Args:
            system: ``platform.system()`` to assume ("Linux", "Windows", "Darwin", ...); tests inject it.
            read_file: reads a text file (Linux); defaults to ``Path.read_text``.
            read_registry: a DWORD under the Tcpip Parameters key, or None (Windows); default winreg.
        """
        system = system or platform.system()
        if system == "Linux":
            return _linux_budget(read_file or _read_text)
        if system == "Windows":
            return _windows_budget(read_registry or _winreg_reader())
        lo, hi = OTHER_RANGE
        return cls(
            ports=hi - lo + 1,
            time_wait_s=OTHER_TIME_WAIT_S,
            source=f"{system} defaults (not read): ports {lo}-{hi}, TIME_WAIT {OTHER_TIME_WAIT_S:g} s",
        )


DEFAULT_PORT_BUDGET = PortBudget()


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="ascii")


def _linux_budget(read_file: ReadFile) -> PortBudget:
    try:
        lo, hi = (int(v) for v in read_file(LINUX_PORT_RANGE_PATH).split())
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"range {lo}-{hi}")
        note = f"Linux ip_local_port_range {lo}-{hi}"
    except (OSError, ValueError) as exc:
        # A container without /proc or a strange value should not stop a migration; assume the kernel default.
        log.warning("cannot read %s (%s); assuming the kernel default", LINUX_PORT_RANGE_PATH, exc)
        lo, hi = LINUX_DEFAULT_RANGE
        note = f"Linux default range {lo}-{hi} (could not read {LINUX_PORT_RANGE_PATH})"
    return PortBudget(
        ports=hi - lo + 1,
        time_wait_s=LINUX_TIME_WAIT_S,
        source=f"{note}, TIME_WAIT fixed {LINUX_TIME_WAIT_S:g} s",
    )


def _windows_budget(read_registry: ReadRegistry) -> PortBudget:
    max_user_port = _registry_value(read_registry, "MaxUserPort", WINDOWS_LEGACY_FIRST_PORT, 65535)
    delay = _registry_value(read_registry, "TcpTimedWaitDelay", 1, 3600)
    if max_user_port is not None:
        ports = max_user_port - WINDOWS_LEGACY_FIRST_PORT + 1
        range_note = f"MaxUserPort={max_user_port}: ports {WINDOWS_LEGACY_FIRST_PORT}-{max_user_port}"
    else:
        lo, hi = WINDOWS_MODERN_RANGE
        ports = hi - lo + 1
        range_note = f"MaxUserPort unset: ports {lo}-{hi}"
    if delay is not None:
        time_wait = float(delay)
        tw_note = f"TcpTimedWaitDelay={delay} s"
    else:
        time_wait = WINDOWS_MODERN_TIME_WAIT_S
        tw_note = f"TcpTimedWaitDelay unset: {WINDOWS_MODERN_TIME_WAIT_S:g} s"
    return PortBudget(ports=ports, time_wait_s=time_wait, source=f"Windows registry, {range_note}, {tw_note}")


def _registry_value(read_registry: ReadRegistry, name: str, lo: int, hi: int) -> int | None:
    try:
        value = read_registry(name)
    except OSError as exc:
        log.warning("cannot read registry value %s (%s); using the default", name, exc)
        return None
    if value is None:
        return None
    if not lo <= value <= hi:
        log.warning("registry value %s=%s is outside %s..%s; using the default", name, value, lo, hi)
        return None
    return value


def _winreg_reader() -> ReadRegistry:
    """Return a reader of DWORDs under the Tcpip Parameters key (only works on Windows)."""

    def read(name: str) -> int | None:
        import winreg  # noqa: PLC0415 - only exists on Windows

        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, WINDOWS_TCPIP_KEY) as key:  # type: ignore[attr-defined,unused-ignore]
                value, _kind = winreg.QueryValueEx(key, name)  # type: ignore[attr-defined,unused-ignore]
        except FileNotFoundError:
            return None
        return int(value)

    return read


def count_time_wait(
    *, read_file: ReadFile | None = None, paths: Iterable[str] = TCP_TABLE_PATHS
) -> int | None:
    """Count sockets in TIME_WAIT from ``/proc/net/tcp`` and ``/proc/net/tcp6``.

    Returns None when no table could be read (not Linux), so callers can say "unknown" rather than 0.
    """
    read = read_file or _read_text
    total: int | None = None
    for path in paths:
        try:
            text = read(path)
        except OSError:
            continue
        total = (total or 0) + _count_state(text, TCP_STATE_TIME_WAIT)
    return total


def _count_state(table: str, state: str) -> int:
    count = 0
    for line in table.splitlines()[1:]:  # the first line is the column header
        fields = line.split()
        # fields: sl, local_address, rem_address, st, ...
        if len(fields) > 3 and fields[3].upper() == state:
            count += 1
    return count


def tuned_budget(*, system: str | None = None) -> PortBudget:
    """The budget this host would have after applying ``tuning_commands()``."""
    system = system or platform.system()
    if system == "Windows":
        return PortBudget(
            ports=WINDOWS_TUNED_MAX_USER_PORT - WINDOWS_LEGACY_FIRST_PORT + 1,
            time_wait_s=float(WINDOWS_TUNED_TIME_WAIT_S),
            source="2009 registry tuning: MaxUserPort=65534, TcpTimedWaitDelay=30",
        )
    if system == "Linux":
        lo, hi = LINUX_TUNED_RANGE
        return PortBudget(ports=hi - lo + 1, time_wait_s=LINUX_TIME_WAIT_S, source=f"Linux range {lo}-{hi}")
    return PortBudget(ports=65535 - 10000 + 1, time_wait_s=OTHER_TIME_WAIT_S, source="range 10000-65535")


def tuning_commands(*, system: str | None = None) -> tuple[str, ...]:
    """Commands (run as root / Administrator) that raise this host's port budget."""
    system = system or platform.system()
    if system == "Windows":
        key = r"HKLM\System\CurrentControlSet\Services\Tcpip\Parameters"
        return (
            f'reg add "{key}" /v MaxUserPort /t REG_DWORD /d {WINDOWS_TUNED_MAX_USER_PORT} /f',
            f'reg add "{key}" /v TcpTimedWaitDelay /t REG_DWORD /d {WINDOWS_TUNED_TIME_WAIT_S} /f',
        )
    if system == "Linux":
        lo, hi = LINUX_TUNED_RANGE
        return (
            f'sysctl -w net.ipv4.ip_local_port_range="{lo} {hi}"',
            "sysctl -w net.ipv4.tcp_tw_reuse=1",
        )
    return ("sysctl -w net.inet.ip.portrange.first=10000",)


def tuning_advice(*, system: str | None = None) -> str:
    """Human text: the OS tuning that would raise the port budget, and what it buys."""
    system = system or platform.system()
    tuned = tuned_budget(system=system)
    lines = [f"  {cmd}" for cmd in tuning_commands(system=system)]
    if system == "Windows":
        head = "Raise it with the 2009 registry values (then reboot):"
        tail = "Windows Vista and later also size the range with: netsh int ipv4 set dynamicport tcp ..."
    elif system == "Linux":
        head = "Raise it with (as root; add to /etc/sysctl.conf to keep it):"
        tail = (
            "Linux TIME_WAIT is fixed at 60 s; tcp_tw_reuse lets new outgoing connections reuse those ports."
        )
    else:
        head = "Raise it with (as root):"
        tail = "This host's values were not read; the figures above are defaults."
    return "\n".join(
        [
            head,
            *lines,
            f"That gives {tuned.ports} ports / {tuned.time_wait_s:g} s"
            f" = {tuned.per_second:.1f} new connections/s.",
            tail,
            "Tuning only moves the wall; crmload reuses connections so it does not need it.",
        ]
    )
