"""Acceptance 1: a fresh virtualenv, the package installed as the README says, the README's demo command.

The repository is copied first (without .git and virtualenvs) so that pip's in-tree build leaves the work tree
clean. The demo loads ``examples/accounts.csv`` into the embedded mock: exit 0, every row done.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "benchmarks",
    "results",
)


@pytest.mark.slow
def test_fresh_install_runs_the_readme_demo(tmp_path: Path) -> None:
    copy = tmp_path / "crmload-src"
    shutil.copytree(REPO, copy, ignore=IGNORE)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRMLOAD_", "PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(copy)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    # The README's demo, run from a checkout:
    #   python -m crmload import examples/accounts.csv --entity account
    demo = subprocess.run(
        [str(python), "-m", "crmload", "import", "examples/accounts.csv", "--entity", "account", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=copy,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads(demo.stdout)
    assert (summary["read"], summary["done"], summary["rejected"], summary["in_doubt"]) == (500, 500, 0, 0)
    assert summary["equation"] == "500 done + 0 rejected + 0 in doubt == 500 rows read"
    assert "embedded mock CRM at http://127.0.0.1:" in demo.stderr
    # The package is imported from the venv, not from the copy's source tree or the global site-packages.
    where = subprocess.run(
        [str(python), "-c", "import crmload, sys; print(crmload.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    assert str(env_dir) in where.stdout
    # A second run works too: the embedded mock's journal is temporary.
    again = subprocess.run(
        [str(python), "-m", "crmload", "import", "examples/accounts.csv", "--entity", "account"],
        capture_output=True,
        text=True,
        env=env,
        cwd=copy,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "500 done + 0 rejected + 0 in doubt == 500 rows read" in again.stdout
