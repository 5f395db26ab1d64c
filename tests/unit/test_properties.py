"""Property-based tests (hypothesis) of mapping and of the journal's state machine (issue 14).

Mapping: any row, under any mix of header types, maps to typed attributes or raises a ``MappingError`` that
names one of its columns; never another exception.

Journal: for any input and any per-call fault script (row faults, lost answers before or after the record
landed, busy until retries gave up), a run and its resumes keep ``done + rejected + in doubt (+ pending while
a run was stopped) == rows read``; a settled row never changes state; a done row has exactly one record, a
rejected row none; keyed rows are never in doubt; and each row ends in the state its script decides.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmload.errors import (
    DuplicateRecord,
    InvalidArgument,
    MappingError,
    RecordNotFound,
    ResponseLostError,
    RetryExhaustedError,
    ServerBusyError,
)
from crmload.load import Loader
from crmload.load.journal import Journal
from crmload.load.mapping import Mapper
from crmload.types import Lookup, Money, Picklist, Status

# Modest counts: the whole unit suite stays a few seconds. No example database: nothing written to the tree.
FAST = settings(max_examples=150, deadline=None, database=None)
RUNS = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# -- mapping ---------------------------------------------------------------------------------------------

#: Header -> the Python type its non-null values must have (from metadata, or the header's own type).
COLUMNS: dict[str, type] = {
    "name": str,
    "revenue": Money,
    "numberofemployees": int,
    "industrycode": Picklist,
    "statuscode": Status,
    "creditonhold": bool,
    "lastusedincampaign": datetime,
    "exchangerate": Decimal,
    "address1_latitude": float,
    "parentaccountid:lookup(account)": Lookup,
    "primarycontactid:key(contact)": Lookup,
    "new_count:int": int,
    "new_ratio:decimal": Decimal,
    "new_ref:uuid": UUID,
    "new_note:string": str,
}
_OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))

# Text as a CSV gives it: arbitrary strings, and strings shaped like each type's values (valid or nearly).
TEXT = st.one_of(
    st.text(max_size=24),
    st.integers().map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.floats().map(repr),
    st.datetimes(timezones=st.none() | _OFFSETS).map(lambda d: d.isoformat()),
    st.uuids().map(str),
    st.sampled_from(
        ["", "  ", "true", "No", "1", "$1,234.50", "-€3", "1,5", "12,345.678", "1e400", "0001-01-01"]
    ),
)
# Values as a library caller may pass them: any Python scalar, NaN and infinities included.
API_VALUE = st.one_of(
    TEXT,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.datetimes(timezones=st.none() | _OFFSETS),
    st.uuids(),
)


# Compiled columns are cached per mapper; building one per example would mostly measure metadata loading.
PLAIN = Mapper("account")
KEYED = Mapper("account", key="code")


def _attribute(header: str) -> str:
    return header.split(":", 1)[0].lower()


def _check_mapped(mapper: Mapper, row: dict[str, Any]) -> dict[str, Any] | None:
    """Map ``row``: return the attrs, or None after checking the MappingError names a column of the row."""
    error: MappingError | None = None
    try:
        attrs = mapper.map(7, row).attrs
    except MappingError as exc:
        error = exc
    if error is None:
        return attrs
    assert error.column in row, (error, row)
    assert error.line_no == 7
    return None


@FAST
@given(row=st.dictionaries(st.sampled_from(sorted(COLUMNS)), TEXT, min_size=1))
def test_text_row_maps_to_typed_values_or_a_mapping_error_naming_a_column(row: dict[str, str]) -> None:
    PLAIN.prepare(list(row))
    attrs = _check_mapped(PLAIN, row)
    if attrs is None:
        return
    assert set(attrs) == {_attribute(h) for h in row}
    for header, raw in row.items():
        value, kind = attrs[_attribute(header)], COLUMNS[header]
        if value is None:
            assert raw.strip() == "", (header, raw)
            continue
        assert isinstance(value, kind), (header, raw, value)
        assert kind is bool or not isinstance(value, bool), (header, raw, value)
        if isinstance(value, datetime):
            assert value.tzinfo is not None


@FAST
@given(row=st.dictionaries(st.sampled_from(sorted(COLUMNS)), API_VALUE, min_size=1))
def test_any_library_value_maps_or_gives_a_mapping_error_never_another_exception(row: dict[str, Any]) -> None:
    _check_mapped(PLAIN, row)


@FAST
@given(key=TEXT, name=TEXT)
def test_keyed_row_gets_its_key_id_or_a_mapping_error_naming_the_key(key: str, name: str) -> None:
    error: MappingError | None = None
    try:
        rec = KEYED.map(3, {"code": key, "name": name})
    except MappingError as exc:
        error = exc
    if error is not None:
        assert error.column in ("code", "name")
        assert error.column == "name" or key.strip() == ""
        return
    assert rec.key == key.strip()
    assert rec.id == uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, "crmload:entity:account"), key.strip())


def test_nan_given_for_a_number_column_is_a_mapping_error() -> None:
    # Regression: a NaN Decimal or float compared with the column's limits raised decimal.InvalidOperation,
    # which escaped Mapper.map and stopped the whole Loader run instead of rejecting the row.
    for column in ("numberofemployees", "industrycode", "exchangerate", "revenue", "new_ratio:decimal"):
        for value in (Decimal("NaN"), Decimal("sNaN"), float("nan")):
            assert _check_mapped(PLAIN, {column: value}) is None, (column, value)


def test_nan_row_is_rejected_and_the_run_goes_on() -> None:
    client = ScriptedClient({})
    rows = [{"name": "R1", "numberofemployees": 3}, {"name": "R2", "numberofemployees": Decimal("NaN")}]
    s = Loader(client, "account", workers=1).run(rows)
    assert (s.read, s.done, s.rejected, s.fatal) == (2, 1, 1, None)


# -- the journal's state machine ---------------------------------------------------------------------------

FAULTS = ("ok", "reject", "lost_before", "lost_after", "busy")
#: Faults that stop a run (the row stays pending): what the client raises only when its retries gave up.
STOPS_KEYED = ("lost_before", "lost_after", "busy")


class ScriptedClient:
    """A CRM stand-in whose Create of row ``name`` meets the next fault of ``script[name]`` (then "ok")."""

    url = "http://fake.invalid/MSCRMServices/2007/CrmService.asmx"
    org = "Fake"

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = {name: list(faults) for name, faults in script.items()}
        self.store: dict[UUID, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def create(self, entity: str, attrs: dict[str, Any], *, id: UUID | None = None) -> UUID:
        name = str(attrs["name"])
        with self._lock:
            faults = self.script.get(name) or ["ok"]
            fault = faults.pop(0)
        if fault == "reject":  # a row's own fault: its message names the row, as CRM's name the value
            raise InvalidArgument(f"bad value in {name}", code="0x80040203")
        if fault == "busy":
            raise RetryExhaustedError("gave up", last=ServerBusyError("busy", status=503), attempts=8)
        if fault == "lost_before":
            raise ResponseLostError("reset before the server committed")
        new = id or uuid.uuid4()
        with self._lock:
            if new in self.store:
                raise DuplicateRecord(f"{new} exists")
            self.store[new] = dict(attrs)
        if fault == "lost_after":
            raise ResponseLostError("reset after the server committed")
        return new

    def retrieve(self, entity: str, id: UUID, columns: Any = None) -> dict[str, Any]:
        with self._lock:
            if id not in self.store:
                raise RecordNotFound(f"{id} not found")
            return dict(self.store[id])

    def stats(self) -> dict[str, Any]:
        return {}

    def records_of(self, name: str) -> int:
        with self._lock:
            return sum(1 for rec in self.store.values() if rec["name"] == name)


def expected(faults: list[str], *, keyed: bool, bad_value: bool) -> tuple[str, int]:
    """The state a row must end in, and its records in the store, by the design's rules."""
    if bad_value:
        return "rejected", 0  # mapping rejects it: never sent
    if not keyed:
        # A lost answer leaves it in doubt, never re-sent. Busy until retries gave up proves it was never
        # applied: the run stops with the row pending, and the resume sends it again.
        for fault in faults:
            if fault != "busy":
                return {
                    "ok": ("done", 1),
                    "reject": ("rejected", 0),
                    "lost_before": ("in_doubt", 0),
                    "lost_after": ("in_doubt", 1),
                }[fault]
        return "done", 1
    for fault in faults:  # keyed: a resume asks CRM (Retrieve by id) and re-sends only what is not there
        if fault in ("ok", "lost_after"):
            return "done", 1
        if fault == "reject":
            return "rejected", 0
    return "done", 1


#: Rows: each has a fault script for its Creates, and one row in ten a value that does not map.
ROWS = st.lists(
    st.tuples(st.lists(st.sampled_from(FAULTS), max_size=3), st.integers(0, 9).map(lambda n: n == 0)),
    min_size=1,
    max_size=25,
)
#: Records a row may have in the store in each journal state.
ALLOWED = {"done": {1}, "rejected": {0}, "in_doubt": {0, 1}, "pending": {0, 1}}


def _states(path: Path) -> dict[int, str]:
    j = Journal(path)
    try:
        return {line: state for line, (state, _attempts) in j.states(0, 10**9).items()}
    finally:
        j.close()


def _check_run(s: Any, states: dict[int, str], client: ScriptedClient, *, keyed: bool) -> None:
    counts = {state: sum(1 for v in states.values() if v == state) for state in ALLOWED}
    assert (s.read, s.done, s.rejected, s.in_doubt, s.pending) == (
        len(states),
        counts["done"],
        counts["rejected"],
        counts["in_doubt"],
        counts["pending"],
    )
    assert s.done + s.rejected + s.in_doubt + s.pending == s.read
    assert s.pending == 0 or s.fatal  # only a stopped run leaves rows pending
    assert not (keyed and s.in_doubt)
    for line, state in states.items():
        assert client.records_of(f"R{line}") in ALLOWED[state], (line, state)


@RUNS
@given(rows=ROWS, keyed=st.booleans(), workers=st.integers(1, 3), batch=st.integers(1, 8))
def test_runs_and_resumes_keep_the_equation_and_end_each_row_as_its_faults_decide(
    rows: list[tuple[list[str], bool]], keyed: bool, workers: int, batch: int
) -> None:
    client = ScriptedClient({f"R{i}": faults for i, (faults, _bad) in enumerate(rows, 1)})
    data = [
        {"name": f"R{i}", "numberofemployees": "x" if bad else str(i)} | ({"code": f"K{i}"} if keyed else {})
        for i, (_faults, bad) in enumerate(rows, 1)
    ]
    # Each stop consumes at least one stopping fault, so this many runs always suffice.
    runs = 1 + sum(f in STOPS_KEYED for faults, _bad in rows for f in faults)
    settled: dict[int, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.sqlite"
        for n in range(runs):
            loader = Loader(
                client,
                "account",
                key="code" if keyed else None,
                journal=path,
                resume=n > 0,
                workers=workers,
                read_chunk=batch,
            )
            try:
                s = loader.run(data)
            finally:
                loader.close()
            states = _states(path)
            _check_run(s, states, client, keyed=keyed)
            assert {line: states[line] for line in settled} == settled  # settled rows never change
            settled = {line: state for line, state in states.items() if state != "pending"}
            if s.fatal is None:
                break
    assert s.fatal is None, f"still stopped after {runs} runs: {s.fatal}"
    assert (s.read, s.pending) == (len(rows), 0)
    assert s.balanced
    for i, (faults, bad) in enumerate(rows, 1):
        got = (states[i], client.records_of(f"R{i}"))
        assert got == expected(faults, keyed=keyed, bad_value=bad), (i, faults, bad)
