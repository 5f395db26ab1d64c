"""Port budget arithmetic, host settings (Linux file, Windows registry injected), TIME_WAIT count, advice."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from crmload.budget import (
    DEFAULT_PORT_BUDGET,
    PortBudget,
    count_time_wait,
    tuned_budget,
    tuning_advice,
    tuning_commands,
)
from crmload.errors import ConfigError


def test_default_is_the_2009_windows_budget() -> None:
    assert (DEFAULT_PORT_BUDGET.ports, DEFAULT_PORT_BUDGET.time_wait_s) == (3976, 240.0)
    assert round(DEFAULT_PORT_BUDGET.per_second, 2) == 16.57
    assert PortBudget() == DEFAULT_PORT_BUDGET
    assert PortBudget(ports=3976, time_wait_s=240, source="elsewhere") == DEFAULT_PORT_BUDGET


def test_frozen_and_replaceable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_PORT_BUDGET.ports = 1  # type: ignore[misc]
    assert dataclasses.replace(DEFAULT_PORT_BUDGET, time_wait_s=30.0).per_second == pytest.approx(3976 / 30)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ports": 0},
        {"ports": 70000},
        {"ports": 10.5},
        {"ports": True},
        {"time_wait_s": 0},
        {"time_wait_s": -1.0},
        {"time_wait_s": float("inf")},
        {"time_wait_s": "60"},
    ],
)
def test_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PortBudget(**kwargs)  # type: ignore[arg-type]


def linux_reader(content: str) -> tuple[list[str], object]:
    paths: list[str] = []

    def read(path: str) -> str:
        paths.append(path)
        return content

    return paths, read


def test_from_host_linux_reads_the_port_range() -> None:
    paths, read = linux_reader("32768\t60999\n")
    budget = PortBudget.from_host(system="Linux", read_file=read)  # type: ignore[arg-type]
    assert paths == ["/proc/sys/net/ipv4/ip_local_port_range"]
    assert (budget.ports, budget.time_wait_s) == (28232, 60.0)
    assert budget.per_second == pytest.approx(470.53, abs=0.01)
    assert "32768-60999" in budget.source


def test_from_host_linux_narrow_range() -> None:
    _, read = linux_reader("40000 40099")
    budget = PortBudget.from_host(system="Linux", read_file=read)  # type: ignore[arg-type]
    assert budget.ports == 100
    assert budget.per_second == pytest.approx(100 / 60)


@pytest.mark.parametrize("content", [None, "garbage", "60999 32768", "1 2 3"])
def test_from_host_linux_unreadable_falls_back_to_kernel_default(
    content: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    def read(path: str) -> str:
        if content is None:
            raise FileNotFoundError(path)
        return content

    with caplog.at_level(logging.WARNING, logger="crmload.budget"):
        budget = PortBudget.from_host(system="Linux", read_file=read)
    assert (budget.ports, budget.time_wait_s) == (28232, 60.0)
    assert "ip_local_port_range" in caplog.text


def registry(values: dict[str, int]) -> object:
    return values.get


@pytest.mark.parametrize(
    ("values", "ports", "time_wait_s"),
    [
        ({"MaxUserPort": 5000, "TcpTimedWaitDelay": 240}, 3976, 240.0),  # the 2009 defaults, spelled out
        ({"MaxUserPort": 65534, "TcpTimedWaitDelay": 30}, 64510, 30.0),  # the 2009 post's tuning
        ({"MaxUserPort": 5000}, 3976, 120.0),
        ({"TcpTimedWaitDelay": 30}, 16384, 30.0),
        ({}, 16384, 120.0),  # modern defaults: 49152-65535, 120 s
        ({"MaxUserPort": 80, "TcpTimedWaitDelay": 0}, 16384, 120.0),  # nonsense values are ignored
    ],
)
def test_from_host_windows_registry(values: dict[str, int], ports: int, time_wait_s: float) -> None:
    budget = PortBudget.from_host(system="Windows", read_registry=registry(values))  # type: ignore[arg-type]
    assert (budget.ports, budget.time_wait_s) == (ports, time_wait_s)


def test_from_host_windows_2009_values_equal_the_default() -> None:
    values = {"MaxUserPort": 5000, "TcpTimedWaitDelay": 240}
    budget = PortBudget.from_host(system="Windows", read_registry=registry(values))  # type: ignore[arg-type]
    assert budget == DEFAULT_PORT_BUDGET
    assert "MaxUserPort=5000" in budget.source


def test_from_host_windows_registry_error_means_unset() -> None:
    def read(name: str) -> int | None:
        raise PermissionError(name)

    budget = PortBudget.from_host(system="Windows", read_registry=read)
    assert (budget.ports, budget.time_wait_s) == (16384, 120.0)


def test_from_host_other_systems_use_documented_defaults() -> None:
    budget = PortBudget.from_host(system="Darwin")
    assert (budget.ports, budget.time_wait_s) == (16384, 30.0)
    assert "not read" in budget.source


TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1146 1 0 100 0 0
   1: 0100007F:9C40 0100007F:1F90 06 00000000:00000000 03:00000F9C 00000000     0        0 0 3 0
   2: 0100007F:9C41 0100007F:1F90 06 00000000:00000000 03:00000F9C 00000000     0        0 0 3 0
   3: 0100007F:9C42 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2211 1 0 20 4
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000001000000:9C43 00000000000000000000000001000000:1F90 06 00000000:00000000
"""


def test_count_time_wait_parses_proc_net_tcp() -> None:
    tables = {"/proc/net/tcp": TCP, "/proc/net/tcp6": TCP6}
    assert count_time_wait(read_file=tables.__getitem__) == 3


def test_count_time_wait_reads_what_exists_and_says_unknown_otherwise() -> None:
    def only_v4(path: str) -> str:
        if path.endswith("tcp6"):
            raise FileNotFoundError(path)
        return TCP

    def nothing(path: str) -> str:
        raise FileNotFoundError(path)

    assert count_time_wait(read_file=only_v4) == 2
    assert count_time_wait(read_file=nothing) is None
    assert count_time_wait(read_file=lambda p: TCP.splitlines()[0]) == 0


def test_linux_advice_names_sysctl() -> None:
    text = tuning_advice(system="Linux")
    assert 'sysctl -w net.ipv4.ip_local_port_range="1024 65535"' in text
    assert "sysctl -w net.ipv4.tcp_tw_reuse=1" in text
    assert tuned_budget(system="Linux").ports == 64512


def test_windows_advice_names_the_2009_registry_values() -> None:
    commands = tuning_commands(system="Windows")
    assert any("MaxUserPort" in c and "/d 65534" in c for c in commands)
    assert any("TcpTimedWaitDelay" in c and "/d 30" in c for c in commands)
    assert all(r"HKLM\System\CurrentControlSet\Services\Tcpip\Parameters" in c for c in commands)
    tuned = tuned_budget(system="Windows")
    assert (tuned.ports, tuned.time_wait_s) == (64510, 30.0)
    assert "2150.3 new connections/s" in tuning_advice(system="Windows")
