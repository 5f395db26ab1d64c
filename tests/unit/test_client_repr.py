"""A CrmClient never shows credentials that came inside its URL."""

from __future__ import annotations

from crmload import CrmClient


def test_url_credentials_never_reach_repr_or_url() -> None:
    with CrmClient("http://bob:S3cr3t-pw@crm:81/MSCRMServices/2007/CrmService.asmx", org="Contoso") as client:
        assert "S3cr3t-pw" not in repr(client)
        assert "bob" not in client.url
        assert client.url == "http://crm:81/MSCRMServices/2007/CrmService.asmx"
        assert client.org == "Contoso"
