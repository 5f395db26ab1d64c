"""The README migration written against the library: accounts, then contacts pointing at them by key.

Run it against a real CRM with ``CRMLOAD_URL`` and ``CRMLOAD_ORG`` set (credentials: see ``crmload.auth``), or
with neither to rehearse against an embedded mock CRM:

    python examples/migrate.py

Accounts get ``id = uuid5(account namespace, accountnumber)``, so a re-run creates nothing twice and the
contacts' ``parentcustomerid`` is computed from their ``account_key`` column without querying CRM.

``CRMLOAD_RATE`` sets the calls per second ("50", "auto"). Against a real CRM each file's journal and
rejects are kept in ``$CRMLOAD_WORKDIR``, or beside the input when it is unset (the names ``crmload import``
uses: ``accounts.csv.crmload.sqlite``, ``accounts.rejects.csv``), so running the script again continues where
a stopped run left off. A rehearsal keeps them in a temporary directory instead: the embedded mock's records
vanish when the script ends, and so must the journal that describes them.
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


def load(client: CrmClient, csv: Path, entity: str, workdir: Path | None, **options: object) -> Summary:
    """Stream one CSV file into ``entity``; journal and rejects go to ``workdir`` (None: beside ``csv``)."""
    where = workdir if workdir is not None else csv.parent
    loader = Loader(
        client,
        entity,
        journal=where / f"{csv.name}.crmload.sqlite",
        rejects=where / f"{csv.stem}.rejects.csv",
        resume=True,  # a second run of this script continues where the first stopped (same journal)
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
        # None is the default: the port budget, safe for a real server even with no connection reuse.
        rate = os.environ.get("CRMLOAD_RATE") or None
        workdir = Path(os.environ["CRMLOAD_WORKDIR"]) if os.environ.get("CRMLOAD_WORKDIR") else None
        if not url:
            url, rate = stack.enter_context(MockCrm(org=org)).url, "unlimited"
            print(f"rehearsing against an embedded mock CRM at {url}", file=sys.stderr)
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crmload-migrate-")))
        elif workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
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
