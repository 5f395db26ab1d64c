"""Hostile strings go through the client, over a real socket into the mock's store, and come back exactly."""

from __future__ import annotations

import pytest

from crmload.client import CrmClient
from crmload.errors import EncodingError

HOSTILE = [
    "<script>alert('x')</script>",
    "Tom & Jerry &amp; &#13; &lt;",
    "]]> and <![CDATA[ x ]]>",
    "\"double\" and 'single' quotes",
    "emoji 😀 and astral 𝄞, accents éàü, CJK 漢字",
    "line one\r\nline two\rline three\nend",
    "\ttabbed\t",
    "  leading and trailing spaces  ",
]


@pytest.fixture
def client(crm):  # type: ignore[no-untyped-def]
    with CrmClient(crm.url, org="Contoso", rate="unlimited") as c:
        yield c


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_string_round_trips_through_mock(client, crm, value: str) -> None:  # type: ignore[no-untyped-def]
    record_id = client.create("account", {"name": value})
    assert client.retrieve("account", record_id, columns=["name"])["name"] == value
    stored = [r for r in crm.records("account") if r["accountid"] == str(record_id)]
    assert len(stored) == 1
    assert stored[0]["name"] == value


@pytest.mark.parametrize("bad", ["nul\x00byte", "bell\x07", "vertical\x0btab", "lone \ud800 surrogate"])
def test_characters_xml_cannot_carry_are_refused_before_sending(client, crm, bad: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EncodingError) as info:
        client.create("account", {"name": bad})
    assert info.value.column == "name"
    assert crm.stats()["requests"] == 0
