"""Service-protection limits on the mock's Organization service (issue 10, acceptance 1): each facet's fault,
its code and message, Retry-After in ErrorDetails and the HTTP header, the penalty extended by requests sent
during it, and every one counted in the stats. Limits are scaled down (20/0.5/2 over 2 s) and time is the
mock's injected clock, advanced only by the mock's own execution-time sleeps, so every number is exact."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crmload.errors import ConfigError
from crmload.mock import FaultPlan, MockCrm
from crmload.mock.protection import ServiceLimits, iso_duration
from crmload.soap import faults
from tests.mock.org_helpers import (
    NS,
    SER,
    XSI,
    Reply,
    create_req,
    envelope,
    execute,
    kv,
    post,
    request,
    string,
)

LIMITS = ServiceLimits(requests=20, exec_s=0.5, concurrent=2, window_s=2.0, penalty_step_s=0.25)
REQUESTS, EXEC, CONCURRENCY = -2147015902, -2147015903, -2147015898


class FakeTime:
    """The mock's clock; its sleep (execution time per record) advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def who_am_i(crm: MockCrm, token: str | None = None) -> Reply:
    return post(crm, "Execute", envelope(execute(request("WhoAmI", "WhoAmI", ""))), token=token)


def create(crm: MockCrm, n: int = 0) -> Reply:
    body = execute(create_req("account", kv("name", string(f"acme {n}"))))
    return post(crm, "Execute", envelope(body))


def retry_after(reply: Reply) -> tuple[float | None, str, str]:
    """Seconds in ErrorDetails["Retry-After"], its i:type, and the HTTP header."""
    pairs = reply.findall(".//a:ErrorDetails/a:KeyValuePairOfstringanyType")
    value = next(p.find("{*}value") for p in pairs if p.findtext("{*}key") == "Retry-After")
    assert value is not None
    xsi_type = value.get(f"{{{XSI}}}type") or ""
    prefix, _, local = xsi_type.partition(":")
    assert value.nsmap.get(prefix) == SER
    assert local == "duration"
    return faults.parse_timespan(value.text or ""), xsi_type, reply.headers["retry-after"]


def user_stats(crm: MockCrm, user: str = "default") -> dict[str, Any]:
    users: dict[str, Any] = crm.stats()["service_protection"]["users"]
    return users[user]  # type: ignore[no-any-return]


@pytest.fixture
def timed(crm_factory: Callable[..., MockCrm]) -> tuple[MockCrm, FakeTime]:
    t = FakeTime()
    return crm_factory(limits=LIMITS, clock=t.clock, sleep=t.sleep), t


def test_request_count_faults_after_the_window_is_exceeded_and_penalty_extends(
    timed: tuple[MockCrm, FakeTime],
) -> None:
    crm, t = timed
    assert all(who_am_i(crm).status == 200 for _ in range(20))  # the limit itself is allowed
    first = who_am_i(crm)
    assert first.status == 500
    assert first.error_code() == REQUESTS
    assert first.xml.findtext(".//a:Message", namespaces=NS) == (
        "Number of requests exceeded the limit of 20 over time window of 2 seconds."
    )
    assert first.xml.findtext(".//faultstring") == first.xml.findtext(".//a:Message", namespaces=NS)
    assert retry_after(first) == (2.0, "e:duration", "2")  # until the oldest request leaves the window
    later = [retry_after(who_am_i(crm))[0] for _ in range(3)]
    assert later == [2.25, 2.5, 2.75]  # each request sent while throttled lengthens the wait
    stats = user_stats(crm)
    assert stats["throttles"] == {"requests": 4, "execution_time": 0, "concurrency": 0}
    assert stats["penalty_s"]["requests"] == 2.75
    assert stats["penalty_extensions"] == 3
    assert stats["windows"] == [{"start_s": 0.0, "requests": 20, "exec_s": 0.0, "peak_concurrency": 1}]
    assert crm.stats()["faults_by_kind"]["service_protection_requests"] == 4
    t.now = 2.75
    assert who_am_i(crm).status == 200  # the penalty is over and the window has emptied
    assert user_stats(crm)["windows"][-1]["requests"] == 1


def test_execution_time_counts_what_the_mock_spent(crm_factory: Callable[..., MockCrm]) -> None:
    t = FakeTime()
    plan = FaultPlan(exec_ms_per_record=100.0)
    crm = crm_factory(limits=LIMITS, faults=plan, clock=t.clock, sleep=t.sleep)
    replies = [create(crm, n) for n in range(6)]  # 0.1 s each; the 6th starts at 0.5 s, not over 0.5 s
    assert [r.status for r in replies] == [200] * 6
    assert t.now == pytest.approx(0.6)
    refused = create(crm, 6)
    assert refused.error_code() == EXEC
    assert "exceeded limit of 500 milliseconds over time window of 2 seconds" in (
        refused.xml.findtext(".//a:Message", namespaces=NS) or ""
    )
    # 0.1 s over: back at the limit once the first request's 0.1 s (finished at 0.1) leaves, at 2.1.
    seconds, _, header = retry_after(refused)
    assert seconds == pytest.approx(1.5)
    assert header == "2"
    assert retry_after(create(crm, 7))[0] == pytest.approx(1.75)
    stats = user_stats(crm)
    assert stats["throttles"]["execution_time"] == 2
    assert stats["penalty_s"]["execution_time"] == pytest.approx(1.75)
    assert stats["peak"]["exec_s"] == pytest.approx(0.6)
    assert stats["windows"][0]["exec_s"] == pytest.approx(0.6)
    assert len(crm.records("account")) == 6  # refused requests never ran
    t.now = 2.4
    assert create(crm, 8).status == 200


def test_concurrency_fault_is_immediate(crm_factory: Callable[..., MockCrm]) -> None:
    gate = threading.Event()
    crm = crm_factory(limits=LIMITS, faults=FaultPlan(exec_ms_per_record=1.0), sleep=lambda s: gate.wait(10))
    held = [threading.Thread(target=create, args=(crm, n)) for n in range(2)]
    for thread in held:
        thread.start()
    deadline = time.monotonic() + 10
    users = lambda: crm.stats()["service_protection"]["users"]  # noqa: E731
    while users().get("default", {}).get("in_flight", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    refused = who_am_i(crm)  # the window is nearly empty: only the in-flight count refuses it
    gate.set()
    for thread in held:
        thread.join(10)
    assert refused.error_code() == CONCURRENCY
    assert refused.xml.findtext(".//a:Message", namespaces=NS) == (
        "Number of concurrent requests exceeded the limit of 2."
    )
    assert retry_after(refused)[0] == 0.25
    stats = user_stats(crm)
    assert stats["throttles"]["concurrency"] == 1
    assert stats["peak"]["concurrency"] == 2
    assert len(crm.records("account")) == 2


def test_concurrency_penalty_is_extended_by_requests_during_it(timed: tuple[MockCrm, FakeTime]) -> None:
    crm, t = timed
    # Two requests held in flight (admitted, never released) make the third a concurrency fault.
    tickets = [crm.protection.admit("default") for _ in range(2)]
    assert retry_after(who_am_i(crm))[0] == 0.25
    for ticket in tickets:
        crm.protection.release(ticket)  # type: ignore[arg-type]
    extended = who_am_i(crm)  # nothing in flight now, but the penalty holds and grows
    assert extended.error_code() == CONCURRENCY
    assert retry_after(extended)[0] == 0.5
    t.now = 0.5
    assert who_am_i(crm).status == 200
    assert user_stats(crm)["throttles"]["concurrency"] == 2
    assert user_stats(crm)["penalty_extensions"] == 1


def test_limits_are_per_user(crm_factory: Callable[..., MockCrm]) -> None:
    t = FakeTime()
    tokens = {"tok-a": "alice", "tok-b": "bob"}
    crm = crm_factory(limits=LIMITS, tokens=tokens, clock=t.clock, sleep=t.sleep)
    assert all(who_am_i(crm, "tok-a").status == 200 for _ in range(20))
    assert who_am_i(crm, "tok-a").error_code() == REQUESTS
    assert who_am_i(crm, "tok-b").status == 200  # bob has a budget of his own
    assert user_stats(crm, "alice")["throttles"]["requests"] == 1
    assert user_stats(crm, "bob")["throttles"]["requests"] == 0
    assert crm.stats()["requests_by_user"] == {"alice": 20, "bob": 1}


def test_fault_has_the_real_capture_shape(timed: tuple[MockCrm, FakeTime], shared_reference: Path) -> None:
    crm, _ = timed
    captured = (
        shared_reference
        / "crm-wsdl"
        / "samples"
        / "org-web_fault_objectdoesnotexist.php-connector-fixture.response.xml"
    ).read_bytes()
    for _ in range(20):
        who_am_i(crm)
    reply = who_am_i(crm)
    assert reply.headers["content-type"] == "text/xml; charset=utf-8"
    old_msg = b"contact With Id = 9e9cc03c-e7cc-e111-bbd7-005056b14b94 Does Not Exist"
    new_msg = b"Number of requests exceeded the limit of 20 over time window of 2 seconds."
    generic = b"http://schemas.datacontract.org/2004/07/System.Collections.Generic"
    details = (
        b'<ErrorDetails xmlns:a="' + generic + b'"><KeyValuePairOfstringanyType><a:key>Retry-After</a:key>'
        b'<a:value i:type="e:duration" xmlns:e="' + SER.encode() + b'">PT2S</a:value>'
        b"</KeyValuePairOfstringanyType></ErrorDetails>"
    )
    expected = (
        captured.replace(old_msg, new_msg)
        .replace(b"-2147220969", str(REQUESTS).encode())
        .replace(b'<ErrorDetails xmlns:a="' + generic + b'"/>', details)
    )
    stamp = b"2016-02-17T08:55:04.9625806Z"
    got = reply.body
    start = got.index(b"<Timestamp>") + len(b"<Timestamp>")
    assert got[:start] + stamp + got[start + len(stamp) :] == expected


def test_dop_hint_header(crm_factory: Callable[..., MockCrm]) -> None:
    crm = crm_factory(limits=ServiceLimits(dop_hint=8))
    reply = who_am_i(crm)
    assert reply.status == 200
    assert reply.headers["x-ms-dop-hint"] == "8"
    assert "x-ms-dop-hint" not in who_am_i(crm_factory()).headers


def test_defaults_off_and_admin_api(crm_factory: Callable[..., MockCrm]) -> None:
    crm = crm_factory()
    assert crm.stats()["service_protection"]["limits"] == ServiceLimits().to_dict()
    assert (
        ServiceLimits()
        .message("execution_time")
        .startswith(
            "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds over time "
            "window of 300 seconds."
        )
    )

    def admin(doc: object) -> tuple[int, Any]:
        data = json.dumps(doc).encode()
        conn = http.client.HTTPConnection(crm.host, crm.port, timeout=10)
        try:
            conn.request("POST", "/_mock/limits", data)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    status, doc = admin({"requests": 1, "exec_s": 10, "concurrent": 5, "window_s": 60})
    assert status == 200
    assert doc["requests"] == 1
    assert who_am_i(crm).status == 200
    assert who_am_i(crm).error_code() == REQUESTS
    assert admin(None) == (200, None)  # off
    assert who_am_i(crm).status == 200
    assert crm.stats()["service_protection"]["limits"] is None
    assert admin({"requests": 0})[0] == 400
    assert admin({"nope": 1})[0] == 400


def test_limits_values() -> None:
    parsed = ServiceLimits.parse("200/4/8", window_s=10)
    assert (parsed.requests, parsed.exec_s, parsed.concurrent, parsed.window_s) == (200, 4.0, 8, 10)
    assert parsed.step_s == 0.1
    for bad in ("200/4", "a/4/8", "0/4/8", "200/-1/8"):
        with pytest.raises(ConfigError):
            ServiceLimits.parse(bad)
    assert [iso_duration(s) for s in (0, 1.5, 256.5, 3600, 0.0000001)] == [
        "PT0S",
        "PT1.5S",
        "PT4M16.5S",
        "PT1H",
        "PT0.0000001S",
    ]


def test_cli_flags() -> None:
    import argparse

    from crmload.cli import mock_cmd

    parser = argparse.ArgumentParser()
    mock_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["mock", "--limits", "200/4/8", "--window-s", "10", "--dop-hint", "8"])
    assert mock_cmd._limits(args) == ServiceLimits(
        requests=200, exec_s=4, concurrent=8, window_s=10, dop_hint=8
    )
    assert mock_cmd._limits(parser.parse_args(["mock", "--limits", "off"])) is None
    assert mock_cmd._limits(parser.parse_args(["mock"])) == ServiceLimits()
