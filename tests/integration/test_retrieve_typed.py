"""Issue 16 item 15: ``retrieve_multiple`` returns the same typed values as ``retrieve``, not text."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

from crmload.client import CrmClient
from crmload.mock import MockCrm
from crmload.throttle import RateLimit
from crmload.types import Key, Lookup, Money, Picklist


def test_retrieve_multiple_values_equal_retrieve_values(crm: MockCrm) -> None:
    with CrmClient(crm.url, org="Contoso", rate=RateLimit.unlimited()) as client:
        parent = client.create("account", {"name": "Parent"})
        child = client.create(
            "account",
            {
                "name": "Child & Co",
                "numberofemployees": 42,
                "creditlimit": Money("1500.25"),
                "industrycode": Picklist(3),
                "donotemail": True,
                "lastusedincampaign": datetime(2024, 1, 15, 8, 30, tzinfo=timezone.utc),
                "parentaccountid": Lookup("account", parent),
            },
        )
        one = client.retrieve("account", child)
        listed = list(client.retrieve_multiple("account", where={"name": "Child & Co"}))
        stats = client.stats()
    assert len(listed) == 1
    assert listed[0] == one
    row = listed[0]
    assert row["accountid"] == Key(child)
    assert row["numberofemployees"] == 42
    assert row["creditlimit"] == Money(Decimal("1500.25"))
    assert row["industrycode"] == Picklist(3)
    assert row["donotemail"] is True
    assert row["parentaccountid"] == Lookup("account", parent)
    assert isinstance(row["lastusedincampaign"], datetime)
    assert stats["calls_by_op"]["RetrieveMultiple"] == 1


def test_retrieve_multiple_pages_stay_typed(crm: MockCrm) -> None:
    with CrmClient(crm.url, org="Contoso", rate=RateLimit.unlimited()) as client:
        made = {client.create("contact", {"lastname": f"c{i}", "numberofchildren": i}) for i in range(5)}
        listed = list(
            client.retrieve_multiple("contact", columns=["contactid", "numberofchildren"], page_size=2)
        )
    assert {r["contactid"].id for r in listed} == made
    assert sorted(r["numberofchildren"] for r in listed) == [0, 1, 2, 3, 4]
    assert all(isinstance(r["contactid"].id, uuid.UUID) for r in listed)


def test_gzip_pages_are_read_through_the_direct_path(crm: MockCrm) -> None:
    """The mock gzips big answers (Accept-Encoding: gzip, as requests sends); the client must inflate them."""
    with CrmClient(crm.url, org="Contoso", rate=RateLimit.unlimited()) as client:
        assert client._transport._direct is not None
        made = {client.create("account", {"name": f"Kraków & 東京 {i:03d}"}): i for i in range(120)}
        listed = list(client.retrieve_multiple("account", columns=["accountid", "name"], page_size=50))
    assert sorted(r["name"] for r in listed) == sorted(f"Kraków & 東京 {i:03d}" for i in range(120))
    assert {r["accountid"].id for r in listed} == set(made)
    # Three pages of 50/50/20 records: the two full ones pass the 2,700-byte threshold and went out gzipped.
    assert crm.stats()["http_features"].get("responses_gzip", 0) >= 2
