"""The run-level circuit breaker on its own: which faults count, when it trips, what it hands back."""

from __future__ import annotations

import threading

import pytest

from crmload.errors import (
    CircuitOpenError,
    ConfigError,
    CrmFault,
    DuplicateRecord,
    InvalidArgument,
    PrivilegeDenied,
    RequiredFieldMissing,
    RunLevelError,
    ServerBusyError,
    is_run_level,
)
from crmload.load.breaker import Breaker

DENIED = PrivilegeDenied("Principal user is missing prvCreateAccount privilege.")
NO_ENTITY = InvalidArgument("The entity with a name = 'nope' was not found in the MetadataCache.")
NO_ATTRIBUTE = InvalidArgument("'account' entity doesn't contain attribute with Name = 'colour'.")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (DENIED, True),
        (NO_ENTITY, True),
        (NO_ATTRIBUTE, True),
        (CrmFault("refused", code="0x80048306"), True),  # access check
        (CrmFault("ticket expired", code="0x8004A101"), True),
        (InvalidArgument("Invalid value for attribute 'revenue' of 'account': 'abc'"), False),
        (DuplicateRecord("Cannot insert duplicate key."), False),
        (RequiredFieldMissing("name is required"), False),
        (CrmFault("An unexpected error occurred.", code="0x80040216"), False),
        (CrmFault("plug-in says no", code="0x80040265"), False),
        (ServerBusyError("busy", status=503), False),
    ],
)
def test_run_level_codes_and_wordings(fault: Exception, expected: bool) -> None:
    assert is_run_level(fault) is expected


def test_trips_on_the_nth_identical_fault_and_holds_every_row() -> None:
    breaker: Breaker[int] = Breaker(3)
    assert breaker.fault(DENIED, 1) == ("hold", [])
    assert breaker.fault(DENIED, 2) == ("hold", [])
    assert breaker.tripped is None
    assert breaker.fault(DENIED, 3) == ("trip", [])
    tripped = breaker.tripped
    assert isinstance(tripped, CircuitOpenError)
    assert isinstance(tripped, RunLevelError)
    assert (tripped.code, tripped.count) == ("0x80040220", 3)
    for words in ("0x80040220", "3 sent rows", "privilege", "--resume"):
        assert words in tripped.message
    # Rows still in flight that meet the same fault stay pending; another fault is the row's own.
    assert breaker.fault(DENIED, 4) == ("pending", [])
    assert breaker.fault(DuplicateRecord("dup"), 5) == ("reject", [])
    # Nothing is handed back for rejection after a trip: the held rows stay pending.
    assert breaker.success() == []
    assert breaker.drain() == []


def test_a_success_breaks_the_streak_and_hands_held_rows_back() -> None:
    breaker: Breaker[int] = Breaker(3)
    breaker.fault(DENIED, 1)
    breaker.fault(DENIED, 2)
    assert breaker.holding
    assert breaker.success() == [1, 2]
    assert not breaker.holding
    breaker.fault(DENIED, 3)
    breaker.fault(DENIED, 4)
    assert breaker.tripped is None  # the count started again


def test_answers_sent_before_the_streak_began_do_not_break_it() -> None:
    # Four workers: rows sent 10-13; row 12 is the first refused, but 10 and 11 answer after it.
    breaker: Breaker[int] = Breaker(3)
    tickets = [breaker.ticket() for _ in range(4)]
    assert breaker.fault(DENIED, 12, tickets[2]) == ("hold", [])
    assert breaker.success(tickets[0]) == []  # sent before the refusals began: says nothing about them
    assert breaker.fault(DuplicateRecord("dup"), 11, tickets[1]) == ("reject", [])
    assert breaker.fault(NO_ENTITY, 11, tickets[1]) == ("reject", [])
    assert breaker.fault(DENIED, 13, tickets[3]) == ("hold", [])
    later = breaker.ticket()
    assert breaker.success(later) == [12, 13]  # sent after them, and it went through: the streak is broken


def test_row_specific_faults_never_trip_and_break_a_streak() -> None:
    breaker: Breaker[int] = Breaker(2)
    bad_value = InvalidArgument("Invalid value for attribute 'revenue' of 'account': 'N/A'")
    for line in range(10):
        assert breaker.fault(bad_value, line) == ("reject", [])
        assert breaker.fault(DuplicateRecord("Cannot insert duplicate key."), line) == ("reject", [])
    breaker.fault(DENIED, 100)
    assert breaker.fault(bad_value, 101) == ("reject", [100])
    assert breaker.tripped is None


def test_another_run_level_fault_starts_a_new_streak() -> None:
    breaker: Breaker[int] = Breaker(2)
    breaker.fault(DENIED, 1)
    assert breaker.fault(NO_ATTRIBUTE, 2) == ("hold", [1])
    assert breaker.fault(NO_ATTRIBUTE, 3) == ("trip", [])
    assert breaker.tripped is not None
    assert "--map" in breaker.tripped.message


def test_record_ids_in_the_message_do_not_make_it_row_specific() -> None:
    breaker: Breaker[int] = Breaker(2)
    template = "Principal with ID {} does not have CreateAccess right(s) for record with ID {}"
    ids = ("1b4f5e7a-0000-4000-8000-000000000001", "{1B4F5E7A-0000-4000-8000-000000000002}")
    breaker.fault(CrmFault(template.format(ids[0], ids[0]), code="0x80048306"), 1)
    assert breaker.fault(CrmFault(template.format(ids[0], ids[1]), code="0x80048306"), 2)[0] == "trip"


def test_zero_disables_and_bad_thresholds_are_config_errors() -> None:
    breaker: Breaker[int] = Breaker(0)
    assert all(breaker.fault(DENIED, n) == ("reject", []) for n in range(100))
    assert breaker.tripped is None
    for bad in (-1, True, 2.5):
        with pytest.raises(ConfigError):
            Breaker(bad)  # type: ignore[arg-type]


def test_drain_hands_back_rows_held_when_the_run_ended_without_a_trip() -> None:
    breaker: Breaker[int] = Breaker(5)
    breaker.fault(DENIED, 1)
    breaker.fault(DENIED, 2)
    assert breaker.drain() == [1, 2]
    assert breaker.drain() == []


def test_many_threads_trip_once_and_lose_no_row() -> None:
    breaker: Breaker[int] = Breaker(50)
    actions: list[tuple[int, str]] = []
    lock = threading.Lock()

    def worker(start: int) -> None:
        for line in range(start, start + 25):
            action, released = breaker.fault(DENIED, line)
            assert released == []
            with lock:
                actions.append((line, action))

    threads = [threading.Thread(target=worker, args=(n * 100,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kinds = [a for _, a in actions]
    assert kinds.count("trip") == 1
    assert kinds.count("hold") == 49
    assert kinds.count("pending") == 50


def test_run_level_errors_are_public() -> None:
    import crmload

    for name in ("RunLevelError", "PreflightError", "CircuitOpenError", "NotAppliedError", "TlsError"):
        assert name in crmload.__all__
    assert issubclass(crmload.PreflightError, crmload.RunLevelError)
    assert issubclass(crmload.NotAppliedError, crmload.ProtocolError)
    assert not issubclass(crmload.TlsError, crmload.ConnectError)  # not retried
