"""One process of the shared-budget tests: create ROWS records through CrmClient with a shared budget.

usage: python budget_worker.py CRM_URL STORE_URL RATE BURST ROWS PREFIX WORKERS
Logs crmload.budgets at INFO to stderr (the tests read the fallback and rejoin lines); prints a JSON line of
client stats on stdout.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import threading

from crmload.client import CrmClient
from crmload.throttle import RateLimit


def main(argv: list[str]) -> int:
    url, store, rate, burst, rows, prefix, workers = argv
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("crmload.budgets").setLevel(logging.INFO)
    limit = RateLimit(per_second=float(rate), burst=int(burst))
    counter = itertools.count()
    total = int(rows)
    with CrmClient(url, org="Contoso", workers=int(workers), rate=limit, budget_store=store or None) as crm:

        def work() -> None:
            while (i := next(counter)) < total:
                crm.create("account", {"name": f"{prefix}-{i}"})

        threads = [threading.Thread(target=work) for _ in range(int(workers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = crm.stats()
    print(json.dumps({k: stats.get(k) for k in ("requests", "budget_fallbacks", "budget_rejoins")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
