"""The README migration written against the library: accounts, then contacts pointing at them by key.

Run it against a real CRM with ``CRMLOAD_URL`` and ``CRMLOAD_ORG`` set (credentials: see ``crmload.auth``), or
with neither to rehearse against an embedded mock CRM:

    python examples/migrate.py

Accounts get ``id = uuid5(account namespace, accountnumber)``, so a re-run creates nothing twice and the
contacts' ``parentcustomerid`` is computed from their ``account_key`` column without querying CRM.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from crmload.client import CrmClient
from crmload.load import CsvSource, Loader, MapSpec, Summary
from crmload.mock import MockCrm

HERE = Path(__file__).resolve().parent


def load(client: CrmClient, csv: Path, entity: str, workdir: Path, **options: object) -> Summary:
    """Stream one CSV file into ``entity``; journal and rejects go to ``workdir``."""
    loader = Loader(
        client,
        entity,
        journal=workdir / f"{csv.name}.crmload.sqlite",
        rejects=workdir / f"{csv.stem}.rejects.csv",
        resume=True,  # a second run of this script continues where the first stopped
        workers=4,
        **options,  # type: ignore[arg-type]
    )
    try:
        with CsvSource(csv) as source:
            summary = loader.run(source)
    finally:
        loader.close()
    print(summary.render(), file=sys.stderr)
    return summary


def main() -> int:
    """Load accounts, then contacts; return 0, or 3 when some rows were rejected or are in doubt."""
    with contextlib.ExitStack() as stack:
        url, org = os.environ.get("CRMLOAD_URL"), os.environ.get("CRMLOAD_ORG", "Contoso")
        rate = None  # the default: the port budget, safe for a real server even with no connection reuse
        if not url:
            url, rate = stack.enter_context(MockCrm(org=org)).url, "unlimited"
            print(f"rehearsing against an embedded mock CRM at {url}", file=sys.stderr)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crmload-migrate-")))
        client = stack.enter_context(CrmClient(url, org=org, workers=4, rate=rate))
        accounts = load(client, HERE / "accounts.csv", "account", workdir, key="accountnumber")
        contacts = load(
            client,
            HERE / "contacts.csv",
            "contact",
            workdir,
            map_spec=MapSpec.load(HERE / "contacts.map.toml"),
        )
        return max(accounts.exit_code, contacts.exit_code)


if __name__ == "__main__":
    raise SystemExit(main())
