"""Create/Update/Delete/Retrieve on the 2007 endpoint in both entity forms, over one keep-alive connection."""

from __future__ import annotations

import uuid

from crmload.mock import MockCrm
from tests.mock.helpers import WS, WS06, connect, dyn_entity, envelope, post, prop


def test_create_update_retrieve_delete_dynamic(crm: MockCrm) -> None:
    rid = uuid.UUID("a1b2c3d4-0000-0000-0000-000000000001")
    conn = connect(crm)
    try:
        props = prop("KeyProperty", "accountid", str(rid)) + prop("StringProperty", "name", "A &amp; B")
        r = post(conn, "Create", envelope(f'<Create xmlns="{WS}">{dyn_entity("account", props)}</Create>'))
        assert r.status == 200
        assert r.find(".//w:CreateResult").text == str(rid)
        props = prop("KeyProperty", "accountid", str(rid)) + prop(
            "CrmNumberProperty", "numberofemployees", "12"
        )
        r = post(conn, "Update", envelope(f'<Update xmlns="{WS}">{dyn_entity("account", props)}</Update>'))
        assert r.status == 200
        assert r.find(".//w:UpdateResponse") is not None
        assert crm.records("account") == [{"accountid": str(rid), "name": "A & B", "numberofemployees": 12}]
        body = (
            f'<Execute xmlns="{WS}"><Request xsi:type="RetrieveRequest" ReturnDynamicEntities="true">'
            '<Target xsi:type="TargetRetrieveDynamic"><EntityName>account</EntityName>'
            f"<EntityId>{rid}</EntityId></Target>"
            '<ColumnSet xmlns:q="http://schemas.microsoft.com/crm/2006/Query" xsi:type="q:AllColumns" />'
            "</Request></Execute>"
        )
        r = post(conn, "Execute", envelope(body))
        assert r.status == 200
        ent = r.find(".//w:Response/q:BusinessEntity")
        assert ent is not None
        assert ent.get("Name") == "account"
        names = {p.get("Name"): p.findtext(f"{{{WS06}}}Value") for p in ent.iter(f"{{{WS06}}}Property")}
        assert names == {"accountid": str(rid), "name": "A & B", "numberofemployees": "12"}
        r = post(
            conn,
            "Delete",
            envelope(f'<Delete xmlns="{WS}"><entityName>account</entityName><id>{rid}</id></Delete>'),
        )
        assert r.status == 200
        assert crm.records("account") == []
    finally:
        conn.close()
    stats = crm.stats()
    assert stats["connections_accepted"] == 1
    assert stats["requests_by_op"] == {"Create": 1, "Update": 1, "Execute": 1, "Delete": 1}
