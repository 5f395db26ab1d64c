#!/usr/bin/env bash
# The README's test command: a fresh virtualenv, the package with its test extra, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CRMLOAD_TEST_VENV:-.venv-test}"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[test]'
exec "$VENV/bin/python" -m pytest "$@"
