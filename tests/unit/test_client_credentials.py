"""ClientCredentials' token cache on a fake clock (no network), and the mapping of MSAL's failures."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable

import pytest
import requests

from crmload._errmap import map_token_errors, token_refusal
from crmload._tokens import CachedToken, authority_url, scope_for
from crmload.auth import ClientCredentials
from crmload.errors import AuthenticationError, ConfigError, TokenError

SECRET = "Cl1ent-LEAKCANARY-secret"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def counting_fetch(lifetime: float = 3600.0) -> tuple[Callable[[], tuple[str, float]], list[str]]:
    issued: list[str] = []

    def fetch() -> tuple[str, float]:
        issued.append(f"tok-{len(issued) + 1}")
        return issued[-1], lifetime

    return fetch, issued


def test_one_fetch_serves_many_calls_and_refresh_comes_a_margin_before_expiry() -> None:
    clock = FakeClock()
    fetch, issued = counting_fetch(3600.0)
    cache = CachedToken(fetch, refresh_margin_s=300.0, clock=clock)
    assert {cache() for _ in range(100)} == {"tok-1"}
    clock.now = 3299.0
    assert cache() == "tok-1"
    clock.now = 3300.0  # 300 s before expiry
    assert cache() == "tok-2"
    assert issued == ["tok-1", "tok-2"]
    assert cache.fetches == 2


def test_margin_is_at_most_half_a_short_lifetime() -> None:
    clock = FakeClock()
    fetch, issued = counting_fetch(60.0)
    cache = CachedToken(fetch, refresh_margin_s=300.0, clock=clock)
    tokens = []
    for step in range(13):  # 0, 10, ..., 120 s
        clock.now = step * 10.0
        tokens.append(cache())
    # Refreshed at 30, 60, 90 and 120 s: every token is replaced at half its life, none is used expired.
    assert len(issued) == 5
    assert tokens[:3] == ["tok-1"] * 3
    assert tokens[3] == "tok-2"


def test_concurrent_first_use_fetches_once() -> None:
    release = threading.Event()
    calls: list[int] = []

    def slow_fetch() -> tuple[str, float]:
        calls.append(1)
        release.wait(10)
        return "tok", 3600.0

    cache = CachedToken(slow_fetch)
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(cache())) for _ in range(8)]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert got == ["tok"] * 8
    assert len(calls) == 1


def test_during_a_proactive_refresh_the_others_keep_the_current_token() -> None:
    clock = FakeClock()
    entered, release = threading.Event(), threading.Event()
    issued: list[str] = []

    def fetch() -> tuple[str, float]:
        issued.append(f"tok-{len(issued) + 1}")
        if len(issued) == 2:
            entered.set()
            release.wait(10)
        return issued[-1], 3600.0

    cache = CachedToken(fetch, clock=clock)
    assert cache() == "tok-1"
    clock.now = 3400.0  # due for refresh, still valid
    refresher = threading.Thread(target=cache)
    refresher.start()
    assert entered.wait(10)
    assert [cache() for _ in range(5)] == ["tok-1"] * 5  # not blocked behind the refresh
    release.set()
    refresher.join(10)
    assert cache() == "tok-2"
    assert len(issued) == 2


def test_a_failed_proactive_refresh_keeps_the_valid_token_and_retries_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    outcomes: list[object] = [("tok-1", 3600.0), TokenError("authority down", cause="unreachable")]
    outcomes.append(("tok-2", 3600.0))

    def fetch() -> tuple[str, float]:
        nxt = outcomes.pop(0)
        if isinstance(nxt, Exception):
            raise nxt
        assert isinstance(nxt, tuple)
        return nxt

    cache = CachedToken(fetch, clock=clock)
    assert cache() == "tok-1"
    clock.now = 3400.0
    with caplog.at_level(logging.WARNING, logger="crmload._tokens"):
        assert cache() == "tok-1"
    assert "refresh failed" in caplog.text
    clock.now = 3410.0  # retried at most 30 s later, not on every call
    assert cache() == "tok-1"
    assert cache.fetches == 2
    clock.now = 3431.0
    assert cache() == "tok-2"


def test_no_token_at_all_raises() -> None:
    def fetch() -> tuple[str, float]:
        raise TokenError("refused", cause="secret")

    with pytest.raises(TokenError):
        CachedToken(fetch)()


def test_invalidate_drops_only_the_refused_token() -> None:
    fetch, issued = counting_fetch()
    cache = CachedToken(fetch)
    assert cache() == "tok-1"
    cache.invalidate("some-older-token")  # another worker already replaced it: nothing to do
    assert cache() == "tok-1"
    cache.invalidate("tok-1")
    assert cache() == "tok-2"
    assert issued == ["tok-1", "tok-2"]


@pytest.mark.parametrize(
    ("answer", "cause", "words"),
    [
        (
            {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. x",
            },
            "secret",
            "client secret of application app1 was refused",
        ),
        ({"error": "invalid_client", "error_codes": [700016]}, "client", "application app1 is not known"),
        ({"error": "unauthorized_client"}, "client", "application app1 is not known"),
        ({"error": "invalid_request", "error_codes": [90002]}, "tenant", "tenant contoso was not found"),
        (
            {"error": "invalid_scope", "error_description": "AADSTS500011: no such resource."},
            "scope",
            "scope",
        ),
        ({"error": "temporarily_unavailable"}, "authority", "unavailable"),
        ({}, "other", "no access token"),
    ],
)
def test_oauth_refusals_name_their_cause(answer: dict[str, object], cause: str, words: str) -> None:
    err = token_refusal(answer, client_id="app1", tenant="contoso", authority="https://login.example/contoso")
    assert isinstance(err, AuthenticationError)
    assert err.cause == cause
    assert words in err.message
    assert "Trace ID" not in err.message


def test_refusal_masks_a_secret_the_server_echoed() -> None:
    answer = {"error": "invalid_client", "error_description": f"AADSTS7000215: bad secret {SECRET}."}
    err = token_refusal(answer, client_id="app1", mask=SECRET)
    assert SECRET not in err.message
    assert err.cause == "secret"


def _raise_in_map(exc: BaseException) -> TokenError:
    with (
        pytest.raises(TokenError) as info,
        map_token_errors(client_id="app1", tenant="t", authority="https://a/t"),
    ):
        raise exc
    return info.value


def test_msal_exceptions_name_their_cause() -> None:
    refused = requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
    assert _raise_in_map(refused).cause == "unreachable"
    cert = requests.exceptions.SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    err = _raise_in_map(cert)
    assert err.cause == "tls"
    assert "--ca-bundle" in err.message
    outer = ValueError("Unable to get authority configuration for https://a/t.")
    outer.__context__ = ValueError("OIDC Discovery failed. HTTP status: 400, Error: AADSTS90002: not found")
    assert _raise_in_map(outer).cause == "tenant"
    assert (
        _raise_in_map(ValueError("Unable to get authority configuration for x. More.")).cause == "authority"
    )
    with pytest.raises(KeyError), map_token_errors():
        raise KeyError("a bug stays a bug")


def test_repr_str_and_vars_never_show_the_secret() -> None:
    cc = ClientCredentials("contoso.onmicrosoft.com", "app1", SECRET)
    texts = [repr(cc), str(cc), f"{cc}", repr(vars(cc)), repr(vars(cc._fetcher))]
    assert all(SECRET not in t for t in texts)
    assert "app1" in repr(cc)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(cc)


def test_configuration_is_checked_up_front() -> None:
    with pytest.raises(ConfigError, match="always verify"):
        ClientCredentials("contoso", "app1", SECRET, verify=False)
    with pytest.raises(ConfigError, match="https"):
        ClientCredentials("contoso", "app1", SECRET, authority="http://login.example")
    with pytest.raises(ConfigError, match="tenant"):
        ClientCredentials("../evil", "app1", SECRET)
    with pytest.raises(ConfigError, match="client"):
        ClientCredentials("contoso", "", SECRET)
    assert authority_url("contoso", None) == "https://login.microsoftonline.com/contoso"
    assert authority_url("t", "https://login.microsoftonline.us/") == "https://login.microsoftonline.us/t"
    assert scope_for("https://org.crm4.dynamics.com/XRMServices/2011/Organization.svc/web") == (
        "https://org.crm4.dynamics.com/.default"
    )
    explicit = ClientCredentials("t", "app1", SECRET, scope="https://org.crm.dynamics.com/api/data/v9.2")
    assert explicit.scope == "https://org.crm.dynamics.com/.default"
    assert ClientCredentials("t", "app1", SECRET).scope is None  # taken from the first request's URL
