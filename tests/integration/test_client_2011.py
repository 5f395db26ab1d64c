"""CrmClient on the Organization service, end to end against the mock's /web endpoint on a real socket.

Counts what the server saw (requests, records in its store) and what the client returns, item by item.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from crmload import Bearer, CrmClient, RetryPolicy
from crmload.batch import CreateRequest, DeleteRequest, UpdateRequest, UpsertRequest
from crmload.errors import (
    AuthenticationError,
    ConfigError,
    DuplicateRecord,
    ItemNotRunError,
    RecordNotFound,
    ResponseLostError,
)
from crmload.metadata import load_metadata
from crmload.mock import FaultPlan, MockCrm
from crmload.types import AltKey, Lookup, Money, Picklist

FAST = RetryPolicy(max_attempts=8, backoff_base_s=0.0, backoff_max_s=0.0, jitter=False)


def _client(url: str, **kwargs: Any) -> CrmClient:
    kwargs.setdefault("rate", "unlimited")
    kwargs.setdefault("retry", FAST)
    return CrmClient(url, **kwargs)


def _soap_requests(server: MockCrm) -> int:
    return int(server.stats()["requests"])


def test_single_operations_round_trip(crm: MockCrm) -> None:
    with _client(crm.url2011) as client:
        assert client.endpoint == "2011"
        who = client.who_am_i()
        assert isinstance(who.user_id, uuid.UUID)
        acc = client.create("account", {"name": "Contoso & <Sons>", "revenue": Money("12.50")})
        contact = client.create("contact", {"lastname": "Morgan", "parentcustomerid": Lookup("account", acc)})
        client.update("account", acc, {"industrycode": Picklist(2)})
        record = client.retrieve("account", acc, ["name", "revenue", "industrycode"])
        assert record["name"] == "Contoso & <Sons>"
        assert record["revenue"] == Money(Decimal("12.50"))
        assert record["industrycode"] == Picklist(2)
        found = list(client.retrieve_multiple("contact", {"lastname": "Morgan"}, ["lastname"]))
        assert [r["contactid"] for r in found] == [contact]
        client.delete("contact", contact)
        with pytest.raises(RecordNotFound):
            client.retrieve("contact", contact)
    assert [r["name"] for r in crm.records("account")] == ["Contoso & <Sons>"]
    assert crm.records("contact") == []


def test_create_many_is_one_request_with_one_result_per_record(crm: MockCrm) -> None:
    records = [{"name": f"acc {i}", "numberofemployees": i} for i in range(1000)]
    before = _soap_requests(crm)
    with _client(crm.url2011) as client:
        results = client.create_many("account", records)
        stats = client.stats()
    assert _soap_requests(crm) - before == 1
    assert stats["calls_by_op"] == {"ExecuteMultiple": 1}
    assert (stats["batches"], stats["batch_items"], stats["mean_batch_size"]) == (1, 1000, 1000.0)
    stored = {uuid.UUID(r["accountid"]): r["name"] for r in crm.records("account")}
    assert len(stored) == 1000
    assert [stored[r] for r in results] == [r["name"] for r in records]  # type: ignore[index]


def test_bad_items_cost_their_own_row_only(crm: MockCrm) -> None:
    missing = uuid.uuid4()
    requests = [CreateRequest("account", {"name": f"ok {i}"}) for i in range(6)]
    requests[2] = CreateRequest(
        "contact", {"lastname": "orphan", "parentcustomerid": Lookup("account", missing)}
    )
    requests[4] = UpdateRequest("account", uuid.uuid4(), {"name": "ghost"})
    with _client(crm.url2011) as client:
        results = client.execute_multiple(requests)
        assert isinstance(results[2], RecordNotFound)
        assert "Does Not Exist" in results[2].message
        assert isinstance(results[4], RecordNotFound)
        assert all(isinstance(results[i], uuid.UUID) for i in (0, 1, 3, 5))
        assert len(crm.records("account")) == 4
        assert client.stats()["batch_item_faults_by_code"] == {"0x80040217": 2}
        stopped = client.execute_multiple(requests, continue_on_error=False)
    assert all(isinstance(r, uuid.UUID) for r in stopped[:2])
    assert isinstance(stopped[2], RecordNotFound)
    assert all(isinstance(r, ItemNotRunError) for r in stopped[3:])
    assert len(crm.records("account")) == 6  # 4 + the 2 before the stop


def test_max_batch_size_fault_splits_and_every_item_lands_once(crm_factory: Callable[..., MockCrm]) -> None:
    server = crm_factory(max_batch_size=250)
    with _client(server.url2011) as client:
        results = client.create_many("account", [{"name": f"a{i}"} for i in range(1000)])
        again = client.create_many("account", [{"name": f"b{i}"} for i in range(500)])
        stats = client.stats()
    assert (stats["batch_splits"], stats["batches"], stats["mean_batch_size"]) == (1, 6, 250.0)
    assert client.batch_limit == 250
    assert all(isinstance(r, uuid.UUID) for r in results + again)
    names = Counter(r["name"] for r in server.records("account"))
    assert len(names) == 1500
    assert set(names.values()) == {1}
    # One refused request of 1,000, then 4 of 250; later batches keep to the limit: 2 more.
    assert _soap_requests(server) == 1 + 4 + 2


def test_lost_answers_resend_keyed_items_and_leave_unkeyed_in_doubt(
    crm_factory: Callable[..., MockCrm],
) -> None:
    plan = FaultPlan(reset_after_commit_rate=0.4, seed=7)
    server = crm_factory(max_batch_size=10, faults=plan)
    keyed_ids = [uuid.uuid4() for _ in range(60)]
    with _client(
        server.url2011, retry=RetryPolicy(max_attempts=30, backoff_base_s=0.0, jitter=False)
    ) as client:
        keyed = client.create_many("account", [{"name": f"k{i}"} for i in range(60)], ids=keyed_ids)
        unkeyed = client.create_many("account", [{"name": f"u{i}"} for i in range(60)])
        stats = client.stats()
    assert server.stats()["faults_by_kind"].get("reset_after_commit", 0) > 0
    assert keyed == keyed_ids  # every keyed row done, exactly once
    stored = Counter(r["name"] for r in server.records("account"))
    assert set(stored.values()) == {1}  # nothing duplicated
    in_doubt = [i for i, r in enumerate(unkeyed) if isinstance(r, ResponseLostError)]
    assert in_doubt  # the seed loses some answers
    assert stats["batch_items_in_doubt"] == len(in_doubt)
    assert stats["batch_answers_lost"] == server.stats()["faults_by_kind"]["reset_after_commit"]
    # The mock commits before it resets, so every in-doubt create did land, once, and was never resent.
    assert all(f"u{i}" in stored for i in in_doubt)
    assert len(stored) == 120


def test_busy_batches_are_resent_whole(crm_factory: Callable[..., MockCrm]) -> None:
    server = crm_factory(max_batch_size=20, faults=FaultPlan(busy_rate=0.5, retry_after_s=0, seed=3))
    with _client(server.url2011) as client:
        results = client.create_many("account", [{"name": f"n{i}"} for i in range(100)])
    assert all(isinstance(r, uuid.UUID) for r in results)
    assert server.stats()["faults_by_kind"].get("busy", 0) > 0
    assert sorted(r["name"] for r in server.records("account")) == sorted(f"n{i}" for i in range(100))


def test_upsert_and_alternate_key_lookups(crm_factory: Callable[..., MockCrm], tmp_path: Any) -> None:
    extra = tmp_path / "keys.toml"
    extra.write_text('[account.keys]\naccountnumber = ["accountnumber"]\n')
    server = crm_factory(metadata=load_metadata(str(extra)))
    with _client(server.url2011) as client:
        first = client.upsert_many(
            "account", [{"accountnumber": "A-1", "name": "One"}], keys=["accountnumber"]
        )
        again = client.upsert_many(
            "account", [{"accountnumber": "A-1", "name": "Uno"}], keys=["accountnumber"]
        )
        assert first == again
        assert isinstance(first[0], uuid.UUID)
        child = client.create(
            "contact", {"lastname": "Kid", "parentcustomerid": AltKey("account", {"accountnumber": "A-1"})}
        )
        record = client.retrieve("contact", child, ["parentcustomerid"])
        assert record["parentcustomerid"] == Lookup("account", first[0])  # type: ignore[arg-type]
        single = client.upsert("account", {"name": "Two"}, keys={"accountnumber": "A-2"})
    assert sorted((r["accountnumber"], r["name"]) for r in server.records("account")) == [
        ("A-1", "Uno"),
        ("A-2", "Two"),
    ]
    assert isinstance(single, uuid.UUID)


def test_the_same_batch_calls_run_one_by_one_on_2007(crm: MockCrm) -> None:
    before = _soap_requests(crm)
    with _client(crm.url, org="Contoso") as client:
        ids = client.create_many("account", [{"name": f"x{i}"} for i in range(5)])
        dup = client.create_many("account", [{"name": "dup"}], ids=[ids[0]])  # type: ignore[list-item]
        updated = client.update_many("account", [(i, {"telephone1": "555"}) for i in ids[:2]])  # type: ignore[misc]
        deleted = client.delete_many("account", ids[3:])  # type: ignore[arg-type]
        upserted = client.upsert("account", {"name": "new"}, id=uuid.UUID(int=77))
        mixed = client.execute_multiple(
            [
                DeleteRequest("account", uuid.UUID(int=77)),
                UpsertRequest("account", {"name": "u"}, uuid.UUID(int=78)),
            ]
        )
    assert all(isinstance(i, uuid.UUID) for i in ids)
    assert isinstance(dup[0], DuplicateRecord)
    assert updated == [None, None]
    assert deleted == [None, None]
    assert upserted == uuid.UUID(int=77)
    assert mixed == [None, uuid.UUID(int=78)]
    assert _soap_requests(crm) - before >= 5 + 1 + 2 + 2
    assert sorted(r["name"] for r in crm.records("account")) == ["u", "x0", "x1", "x2"]


def test_batch_size_caps_each_request(crm: MockCrm) -> None:
    before = _soap_requests(crm)
    with _client(crm.url2011) as client:
        results = client.execute_multiple(
            [CreateRequest("account", {"name": f"s{i}"}) for i in range(25)], batch_size=10
        )
        stats = client.stats()
        with pytest.raises(ConfigError):
            client.execute_multiple([], batch_size=0)
        with pytest.raises(ConfigError):
            client.execute_multiple([object()])  # type: ignore[list-item]
    assert all(isinstance(r, uuid.UUID) for r in results)
    assert _soap_requests(crm) - before == 3
    assert (stats["batches"], stats["batch_items"]) == (3, 25)


def test_bearer_tokens_and_a_refused_batch(crm_factory: Callable[..., MockCrm]) -> None:
    server = crm_factory(tokens=["good-token"])
    with _client(server.url2011, auth=Bearer("good-token")) as client:
        assert client.create_many("account", [{"name": "a"}, {"name": "b"}])[0] is not None
    with _client(server.url2011, auth=Bearer("bad-token")) as client, pytest.raises(AuthenticationError):
        client.create_many("account", [{"name": "c"}])  # belongs to the run: raised, not a per-item result
    assert sorted(r["name"] for r in server.records("account")) == ["a", "b"]
