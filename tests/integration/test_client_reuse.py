"""Acceptance 1: connection reuse, measured on both sides of a real socket; and the basic operations."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from crmload.client import CrmClient
from crmload.mock import MockCrm
from crmload.throttle import RateLimit

CREATES = 10_000
THREADS = 8


def test_ten_thousand_creates_from_eight_threads_use_at_most_eight_connections(crm: MockCrm) -> None:
    errors: list[BaseException] = []
    with CrmClient(crm.url, org="Contoso", workers=THREADS, rate=RateLimit.unlimited()) as client:

        def work(n: int) -> None:
            for i in range(n, CREATES, THREADS):
                try:
                    client.create("account", {"name": f"acct {i}", "numberofemployees": i})
                except BaseException as exc:  # collected, asserted below
                    errors.append(exc)

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(work, range(THREADS)))
        stats = client.stats()
    server = crm.stats()

    assert errors == []
    assert len(crm.records("account")) == CREATES
    assert server["records_by_entity"]["account"] == CREATES
    assert server["connections_accepted"] <= THREADS
    assert stats["sockets_opened"] == server["connections_accepted"]
    assert stats["calls"] == CREATES
    assert stats["calls_by_op"] == {"Create": CREATES}
    assert stats["requests"] == server["requests"] == CREATES
    assert stats["reuse_ratio"] >= CREATES / THREADS
    assert stats["retries"] == 0
    assert stats["latency_p50_s"] is not None


def test_operations_round_trip(crm: MockCrm) -> None:
    with CrmClient(crm.url, org="Contoso", rate=RateLimit.unlimited()) as client:
        account_id = client.create("account", {"name": "Contoso & <Sons>"})
        client.update("account", account_id, {"telephone1": "555-0100"})
        rec = client.retrieve("account", account_id, columns=["name", "telephone1"])
        assert rec["name"] == "Contoso & <Sons>"
        assert rec["telephone1"] == "555-0100"
        contact_ids = {client.create("contact", {"lastname": f"c{i}"}) for i in range(7)}
        listed = list(client.retrieve_multiple("contact", columns=["contactid"], page_size=3))
        # Typed as retrieve() types them: the primary key comes back as a Key, not as text.
        assert {r["contactid"].id for r in listed} == contact_ids
        who = client.who_am_i()
        assert isinstance(who.user_id, uuid.UUID)
        raw = client.execute_raw('<Request xsi:type="WhoAmIRequest"/>')
        assert b"WhoAmIResponse" in raw
        client.delete("account", account_id)
        assert crm.records("account") == []
        stats = client.stats()
    # 7 contacts at 3 per page: the pager followed the cookie across 3 pages.
    assert stats["calls_by_op"]["RetrieveMultiple"] == 3
    assert stats["sockets_opened"] == crm.stats()["connections_accepted"] == 1


def test_keyed_create_returns_the_chosen_id(crm: MockCrm) -> None:
    key = uuid.uuid5(uuid.NAMESPACE_URL, "account/42")
    with CrmClient(crm.url, org="Contoso", rate=RateLimit.unlimited()) as client:
        assert client.create("account", {"name": "keyed"}, id=key) == key
    assert [r["accountid"] for r in crm.records("account")] == [str(key)]


def test_client_is_shared_safely_by_threads_under_the_default_rate(crm: MockCrm) -> None:
    """The default rate is the port budget; a handful of calls from threads still all land."""
    barrier = threading.Barrier(4)
    with CrmClient(crm.url, org="Contoso", workers=4) as client:

        def work() -> None:
            barrier.wait()
            client.create("account", {"name": "t"})

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert client.stats()["limiter_mode"] == "fixed"
    assert len(crm.records("account")) == 4
