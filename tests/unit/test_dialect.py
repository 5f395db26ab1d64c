"""The dialect seam: which endpoint a URL means, and what each dialect brings."""

from __future__ import annotations

import pytest

from crmload import CrmClient
from crmload.errors import ConfigError
from crmload.soap.codec2007 import Codec2007
from crmload.soap.codec2011 import Codec2011
from crmload.soap.dialect import build_dialect, org_from_url, select_url

ASMX = "/MSCRMServices/2007/CrmService.asmx"
WEB = "/XRMServices/2011/Organization.svc/web"


@pytest.mark.parametrize(
    ("url", "endpoint", "expected"),
    [
        ("http://crm/MSCRMServices/2007/CrmService.asmx", None, ("2007", "http://crm" + ASMX)),
        (
            "http://crm/mscrmservices/2007/crmservice.asmx",
            None,
            ("2007", "http://crm/mscrmservices/2007/crmservice.asmx"),
        ),
        (
            "http://crm/Contoso/XRMServices/2011/Organization.svc/web",
            None,
            ("2011", "http://crm/Contoso" + WEB),
        ),
        ("http://crm/Contoso/XRMServices/2011/Organization.svc", None, ("2011", "http://crm/Contoso" + WEB)),
        ("https://contoso.crm4.dynamics.com/", None, ("2011", "https://contoso.crm4.dynamics.com" + WEB)),
        ("https://contoso.crm4.dynamics.com", None, ("2011", "https://contoso.crm4.dynamics.com" + WEB)),
        ("http://crm:5555/Contoso/", None, ("2011", "http://crm:5555/Contoso" + WEB)),
        ("http://crm:5555/", "2007", ("2007", "http://crm:5555" + ASMX)),
        ("http://crm:5555/", "2011", ("2011", "http://crm:5555" + WEB)),
        ("http://crm" + ASMX, "2007", ("2007", "http://crm" + ASMX)),
    ],
)
def test_url_picks_the_dialect(url: str, endpoint: str | None, expected: tuple[str, str]) -> None:
    assert select_url(url, endpoint) == expected


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://crm" + ASMX, "2011"),
        ("http://crm" + WEB, "2007"),
        ("http://crm/", "2013"),
        ("ftp://crm/", None),
        ("crm.example.com", None),
    ],
)
def test_contradictions_are_config_errors(url: str, endpoint: str | None) -> None:
    with pytest.raises(ConfigError):
        select_url(url, endpoint)


def test_dialects_bring_codec_faults_and_capabilities() -> None:
    old = build_dialect("http://crm" + ASMX, org="Contoso")
    new = build_dialect("https://contoso.crm4.dynamics.com/")
    assert (old.name, type(old.codec), old.org, old.capabilities.max_batch) == (
        "2007",
        Codec2007,
        "Contoso",
        1,
    )
    assert not old.capabilities.upsert
    assert not old.capabilities.alternate_keys
    assert (new.name, type(new.codec), new.org, new.capabilities.max_batch) == (
        "2011",
        Codec2011,
        "contoso",
        1000,
    )
    assert new.capabilities.upsert
    assert new.capabilities.alternate_keys
    assert new.capabilities.multi_select
    assert old.parse_fault is not new.parse_fault
    with pytest.raises(ConfigError, match="org is required"):
        build_dialect("http://crm" + ASMX)


def test_org_from_url() -> None:
    assert org_from_url("http://crm/Contoso/XRMServices/2011/Organization.svc/web") == "Contoso"
    assert (
        org_from_url("https://fabrikam.crm.dynamics.com/XRMServices/2011/Organization.svc/web") == "fabrikam"
    )


def test_client_keeps_its_api_on_both_endpoints() -> None:
    with CrmClient("http://127.0.0.1:9" + ASMX, org="Contoso") as old:
        assert (old.endpoint, old.org, old.url) == ("2007", "Contoso", "http://127.0.0.1:9" + ASMX)
    with CrmClient("http://127.0.0.1:9/Contoso/") as new:
        assert (new.endpoint, new.org, new.url) == ("2011", "Contoso", "http://127.0.0.1:9/Contoso" + WEB)
        assert new.capabilities.max_batch == 1000
    with pytest.raises(ConfigError):
        CrmClient("http://127.0.0.1:9" + ASMX)
