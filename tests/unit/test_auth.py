"""Client auth objects without sockets: masking, headers, bearer refresh, NTLM configuration, CLI flags."""

from __future__ import annotations

import argparse
import io
import pickle
from collections.abc import Mapping
from typing import Any

import pytest
import requests
import urllib3
from requests.adapters import BaseAdapter

from crmload.auth import Basic, Bearer, Negotiate, Ntlm, Secret
from crmload.cli import auth_opts
from crmload.errors import AuthenticationError, ConfigError

PW = "pa55-UNIT-secret"


class FakeAdapter(BaseAdapter):
    """Answers from a script of statuses and records the Authorization header of every request."""

    def __init__(self, statuses: list[int], headers: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.statuses = list(statuses)
        self.headers = dict(headers or {})
        self.seen: list[str | None] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.seen.append(request.headers.get("Authorization"))
        resp = requests.Response()
        resp.status_code = self.statuses.pop(0)
        resp.headers.update(self.headers)
        resp.raw = urllib3.HTTPResponse(body=io.BytesIO(b"x"), preload_content=False, status=resp.status_code)
        resp.request = request
        resp.url = request.url or ""
        resp.connection = self
        return resp

    def close(self) -> None:
        pass


def session_with(adapter: FakeAdapter, auth: Any) -> requests.Session:
    s = requests.Session()
    s.mount("http://", adapter)
    s.auth = auth
    return s


@pytest.mark.parametrize(
    ("obj", "text"),
    [
        (Ntlm("CONTOSO\\alice", PW), "Ntlm(user='CONTOSO\\\\alice', password=***)"),
        (Negotiate("CONTOSO\\alice", PW), "Negotiate(user='CONTOSO\\\\alice', password=***)"),
        (Basic("alice", PW), "Basic(user='alice', password=***)"),
        (Bearer(PW), "Bearer(token=***)"),
        (Bearer(lambda: PW), "Bearer(token=***)"),
        (Secret(PW), "***"),
    ],
)
def test_reprs_mask_secrets(obj: object, text: str) -> None:
    assert repr(obj) == text
    assert PW not in str(obj) + f"{obj}" + repr(getattr(obj, "__dict__", {}))


def test_secret_reveals_only_on_request_and_refuses_pickle() -> None:
    s = Secret(PW)
    assert s.reveal() == PW
    assert s == Secret(PW)
    assert s != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        pickle.dumps(Ntlm("u", PW))
    with pytest.raises(ConfigError):
        Secret(123)  # type: ignore[arg-type]


def test_ntlm_configuration() -> None:
    assert Ntlm("CONTOSO\\alice", PW).pins_connection is True
    with pytest.raises(ConfigError):
        Ntlm("", PW)
    with pytest.raises(ConfigError):
        Ntlm("u", PW, max_handshakes=0)


def test_prepare_installs_a_separate_state_per_session() -> None:
    auth = Ntlm("CONTOSO\\alice", PW)
    one, two = requests.Session(), requests.Session()
    auth.prepare(one)
    auth.prepare(two)
    assert one.auth is not two.auth
    assert one.auth is not auth
    one.close()
    two.close()


def test_basic_header_and_401_is_authentication_error() -> None:
    adapter = FakeAdapter([200, 401])
    with session_with(adapter, Basic("alice", PW)) as s:
        assert s.post("http://crm/x", data=b"1").status_code == 200
        with pytest.raises(AuthenticationError) as info:
            s.post("http://crm/x", data=b"1")
    assert adapter.seen[0] == "Basic YWxpY2U6cGE1NS1VTklULXNlY3JldA=="
    assert PW not in str(info.value)


def test_bearer_static_token_401_fails_without_resend() -> None:
    adapter = FakeAdapter([401])
    with session_with(adapter, Bearer(PW)) as s, pytest.raises(AuthenticationError):
        s.post("http://crm/x", data=b"1")
    assert adapter.seen == ["Bearer " + PW]


def test_bearer_callable_is_refreshed_on_401_and_resent_once() -> None:
    tokens = iter(["t1", "t1", "t2", "t2"])
    adapter = FakeAdapter([200, 401, 200])
    with session_with(adapter, Bearer(lambda: next(tokens))) as s:
        assert s.post("http://crm/x", data=b"1").status_code == 200
        resp = s.post("http://crm/x", data=b"1")
    assert resp.status_code == 200
    assert len(resp.history) == 1
    assert adapter.seen == ["Bearer t1", "Bearer t1", "Bearer t2"]


def test_bearer_callable_same_token_after_401_fails() -> None:
    adapter = FakeAdapter([401])
    with session_with(adapter, Bearer(lambda: "same")) as s, pytest.raises(AuthenticationError):
        s.post("http://crm/x", data=b"1")
    assert len(adapter.seen) == 1


def test_bearer_refreshed_token_refused_too_stops_after_one_resend() -> None:
    tokens = iter(["a", "b", "c", "d"])
    adapter = FakeAdapter([401, 401])
    with session_with(adapter, Bearer(lambda: next(tokens))) as s, pytest.raises(AuthenticationError):
        s.post("http://crm/x", data=b"1")
    assert len(adapter.seen) == 2


def test_ntlm_401_without_ntlm_offer_is_authentication_error() -> None:
    adapter = FakeAdapter([401], headers={"WWW-Authenticate": "Basic realm=x"})
    with session_with(adapter, Ntlm("CONTOSO\\alice", PW)) as s, pytest.raises(AuthenticationError):
        s.post("http://crm/x", data=b"1")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    auth_opts.add_arguments(parser)
    return parser.parse_args(argv)


def no_prompt(text: str) -> str:
    raise AssertionError("must not prompt")


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["--user", "CONTOSO\\alice"], Ntlm),
        (["--auth", "ntlm", "--user", "CONTOSO\\alice"], Ntlm),
        (["--auth", "negotiate", "--user", "CONTOSO\\alice"], Negotiate),
        (["--auth", "basic", "--user", "alice"], Basic),
        (["--token-env", "TOK"], Bearer),
        (["--auth", "bearer", "--token-env", "TOK"], Bearer),
    ],
)
def test_build_auth_kinds(argv: list[str], kind: type) -> None:
    env = {"CRMLOAD_PASSWORD": PW, "TOK": "tkn"}
    auth = auth_opts.build_auth(parse(*argv), environ=env, prompt=no_prompt, interactive=False)
    assert type(auth) is kind
    assert PW not in repr(auth)


def test_build_auth_none_by_default() -> None:
    assert auth_opts.build_auth(parse(), environ={}, prompt=no_prompt, interactive=False) is None
    assert auth_opts.build_auth(parse("--auth", "none"), environ={}, prompt=no_prompt) is None


def test_password_is_prompted_when_interactive_and_unset() -> None:
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return PW

    auth = auth_opts.build_auth(
        parse("--user", "CONTOSO\\alice"), environ={}, prompt=prompt, interactive=True
    )
    assert isinstance(auth, Ntlm)
    assert asked == ["Password for CONTOSO\\alice: "]


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--user", "CONTOSO\\alice"], {}, "CRMLOAD_PASSWORD"),
        (["--auth", "ntlm"], {"CRMLOAD_PASSWORD": PW}, "--user"),
        (["--user", "CONTOSO\\alice:" + PW], {"CRMLOAD_PASSWORD": PW}, "DOMAIN\\user only"),
        (["--auth", "bearer"], {}, "--token-env"),
        (["--token-env", "MISSING"], {}, "MISSING"),
    ],
)
def test_build_auth_errors(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        auth_opts.build_auth(parse(*argv), environ=env, prompt=no_prompt, interactive=False)
    assert message in str(info.value)
    assert PW not in str(info.value)


def test_no_password_flag_exists() -> None:
    with pytest.raises(SystemExit):
        parse("--password", PW)
