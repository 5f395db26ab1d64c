"""No password or token in logs (DEBUG included), files written, exception texts, summaries, reprs or argv."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crmload.auth import Basic, Bearer, ClientCredentials, Negotiate, Ntlm, Secret
from crmload.budget import PortBudget
from crmload.client import CrmClient
from crmload.errors import AuthenticationError, TokenError
from crmload.mock import MockCrm

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Zq9-LEAKCANARY-pw-7Hx"
TOKEN = "eyJLEAKCANARY.token.Q2w"
USER = "CONTOSO\\alice"
CLIENT_SECRET = "Az9-LEAKCANARY-client-5Rt"
CLIENT_ID = "app-leak-test"
SECRETS = (PASSWORD, TOKEN, CLIENT_SECRET)
#: The shape of the access tokens the mock's token authority issues (``mock.`` + token_urlsafe(32)).
ISSUED_TOKEN = re.compile(rb"mock\.[A-Za-z0-9_\-]{40,}")


def leaks(blob: bytes | str) -> list[str]:
    """The secrets found in ``blob``, as UTF-8 or UTF-16 (NTLM's own encoding), and any issued token."""
    data = blob.encode("utf-8", "surrogateescape") if isinstance(blob, str) else blob
    found = [s for s in SECRETS if s.encode() in data or s.encode("utf-16-le") in data]
    return found + [m.decode() for m in ISSUED_TOKEN.findall(data)]


def test_the_detector_detects() -> None:
    assert leaks(f"x{PASSWORD}y") == [PASSWORD]
    assert leaks(("a" + TOKEN).encode("utf-16-le")) == [TOKEN]
    assert leaks("Bearer mock." + "x" * 43) == ["mock." + "x" * 43]


def files_under(root: Path) -> Iterator[Path]:
    return (p for p in sorted(root.rglob("*")) if p.is_file())


def sample_csv(tmp_path: Path) -> Path:
    lines = (REPO / "examples" / "accounts.csv").read_text(encoding="utf-8").splitlines()[:41]
    lines.append(
        "A-999999,Broken Row Ltd,,,,,,,,not-a-number,,,,"
    )  # a reject, so the rejects file is written
    path = tmp_path / "accounts.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def ntlm_crm(crm_factory: Callable[..., MockCrm]) -> MockCrm:
    return crm_factory(users={USER: PASSWORD})


def run_import(
    crm: MockCrm, tmp_path: Path, *auth_args: str, password: str = PASSWORD, url: str | None = None
) -> tuple[int, str, str]:
    csv = sample_csv(tmp_path)
    argv = [
        sys.executable, "-m", "crmload", "import", str(csv), "--entity", "account", "--url", url or crm.url,
        "--org", "Contoso", "--workers", "4", "--rate", "unlimited", "--no-progress", "--json", "-vv",
        *auth_args,
    ]  # fmt: skip
    env = {**os.environ, "CRMLOAD_PASSWORD": password, "CRMLOAD_TEST_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
    env["CRMLOAD_CLIENT_SECRET"] = password if password != PASSWORD else CLIENT_SECRET
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    seen_argv = cmdline.read_bytes() if cmdline.exists() else b""
    out, err = proc.communicate(timeout=120)
    assert not leaks(seen_argv)
    assert not leaks(" ".join(argv))
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def assert_nothing_leaked(tmp_path: Path, *texts: str) -> None:
    for text in texts:
        assert not leaks(text)
    written = list(files_under(tmp_path))
    assert written, "the run wrote no files to check"
    for path in written:
        assert not leaks(path.read_bytes()), path


def test_full_ntlm_import_at_debug_leaks_nothing(ntlm_crm: MockCrm, tmp_path: Path) -> None:
    code, out, err = run_import(ntlm_crm, tmp_path, "--auth", "ntlm", "--user", USER)
    assert code == 3, err[-2000:]  # finished, with the one rejected row
    assert ntlm_crm.stats()["auth"]["handshakes"] >= 1
    assert "DEBUG" in err  # -vv really logged at DEBUG
    names = {p.name for p in files_under(tmp_path)}
    assert any(n.endswith(".sqlite") for n in names)
    assert any("rejects" in n for n in names)
    assert_nothing_leaked(tmp_path, out, err)


def test_refused_password_at_debug_leaks_nothing(ntlm_crm: MockCrm, tmp_path: Path) -> None:
    wrong = "Wr0ng-LEAKCANARY-pw-7Hx"
    code, out, err = run_import(ntlm_crm, tmp_path, "--auth", "ntlm", "--user", USER, password=wrong)
    assert code == 1
    assert wrong.encode() not in (out + err).encode()
    assert_nothing_leaked(tmp_path, out, err)


def test_refused_bearer_token_at_debug_leaks_nothing(ntlm_crm: MockCrm, tmp_path: Path) -> None:
    code, out, err = run_import(ntlm_crm, tmp_path, "--auth", "bearer", "--token-env", "CRMLOAD_TEST_TOKEN")
    assert code == 1
    assert "bearer token" in err
    assert_nothing_leaked(tmp_path, out, err)


@pytest.fixture
def azure_crm(crm_factory: Callable[..., MockCrm], mock_ca: Any) -> MockCrm:
    return crm_factory(tls=mock_ca.server_context, clients={CLIENT_ID: CLIENT_SECRET})


def client_credentials_args(crm: MockCrm, mock_ca: Any) -> list[str]:
    return [
        "--auth", "client-credentials", "--tenant", "contoso", "--client-id", CLIENT_ID,
        "--authority", crm.base_url, "--ca-bundle", mock_ca.bundle,
    ]  # fmt: skip


def test_client_credentials_import_at_debug_leaks_nothing(
    azure_crm: MockCrm, mock_ca: Any, tmp_path: Path
) -> None:
    args = client_credentials_args(azure_crm, mock_ca)
    code, out, err = run_import(azure_crm, tmp_path, *args, url=azure_crm.url2011)
    assert code == 3, err[-2000:]  # finished, with the one rejected row
    assert azure_crm.stats()["token"]["tokens_issued"] == 1
    assert "DEBUG" in err
    names = {p.name for p in files_under(tmp_path)}
    assert any(n.endswith(".sqlite") for n in names)
    assert any("rejects" in n for n in names)
    assert_nothing_leaked(tmp_path, out, err)


def test_refused_client_secret_at_debug_leaks_nothing(
    azure_crm: MockCrm, mock_ca: Any, tmp_path: Path
) -> None:
    wrong = "Wr0ng-LEAKCANARY-client-7Hx"
    args = client_credentials_args(azure_crm, mock_ca)
    code, out, err = run_import(azure_crm, tmp_path, *args, url=azure_crm.url2011, password=wrong)
    assert code == 1
    assert "client secret" in err
    assert wrong.encode() not in (out + err).encode()
    assert_nothing_leaked(tmp_path, out, err)


def test_library_logs_exceptions_and_reprs_leak_nothing(
    ntlm_crm: MockCrm, caplog: pytest.LogCaptureFixture
) -> None:
    budget = PortBudget(ports=60000, time_wait_s=1.0)
    caplog.set_level(logging.DEBUG)  # the root logger: crmload, urllib3, spnego, everything
    objects: list[object] = [
        Ntlm(USER, PASSWORD), Negotiate(USER, PASSWORD), Basic("alice", PASSWORD), Bearer(TOKEN),
        Bearer(lambda: TOKEN), Secret(PASSWORD),
    ]  # fmt: skip
    texts = [repr(o) for o in objects] + [str(o) for o in objects] + [f"{o}" for o in objects]
    texts += [repr(vars(o)) for o in objects if hasattr(o, "__dict__")]
    with CrmClient(ntlm_crm.url, org="Contoso", budget=budget, rate="unlimited", auth=objects[0]) as c:
        c.create("account", {"name": "ok"})
        texts.append(repr(c) + repr(c.stats()))
    for auth in (Ntlm(USER, PASSWORD + "x"), Bearer(TOKEN), Basic("alice", PASSWORD)):
        with (
            CrmClient(ntlm_crm.url, org="Contoso", budget=budget, auth=auth) as c,
            pytest.raises(AuthenticationError) as info,
        ):
            c.create("account", {"name": "refused"})
        texts.append("".join(traceback.format_exception(info.value)))
    texts += [r.getMessage() for r in caplog.records]
    texts += [logging.Formatter().format(r) for r in caplog.records]
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    for text in texts:
        assert not leaks(text), text
    with pytest.raises(TypeError):
        __import__("pickle").dumps(Secret(PASSWORD))


def test_client_credentials_library_logs_exceptions_and_reprs_leak_nothing(
    azure_crm: MockCrm, mock_ca: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: crmload, msal, urllib3, everything
    texts: list[str] = []
    for secret, refused in ((CLIENT_SECRET, False), (CLIENT_SECRET + "x", True)):
        auth = ClientCredentials(
            "contoso", CLIENT_ID, secret, authority=azure_crm.base_url, verify=mock_ca.bundle
        )
        texts += [repr(auth), str(auth), f"{auth}", repr(vars(auth)), repr(auth.stats())]
        with CrmClient(azure_crm.url2011, rate="unlimited", auth=auth, verify=mock_ca.bundle) as c:
            if refused:
                with pytest.raises(TokenError) as info:
                    c.create("account", {"name": "refused"})
                texts.append("".join(traceback.format_exception(info.value)))
            else:
                c.create("account", {"name": "ok"})
                azure_crm.bearer.expire()  # a 401 and a refresh, logged too
                c.create("account", {"name": "after a refresh"})
            texts.append(repr(c) + repr(c.stats()))
    assert azure_crm.stats()["token"]["tokens_issued"] == 2
    texts += [r.getMessage() for r in caplog.records]
    texts += [logging.Formatter().format(r) for r in caplog.records]
    assert any(r.name.startswith("msal") for r in caplog.records)  # MSAL's own DEBUG lines were checked
    for text in texts:
        assert not leaks(text), text
