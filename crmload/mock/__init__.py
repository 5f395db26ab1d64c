"""A mock CRM 4.0 server for tests, benchmarks and rehearsals: a real HTTP/1.1 keep-alive SOAP endpoint.

Example::

    from crmload.mock import FaultPlan, MockCrm

    with MockCrm(org="Contoso", faults=FaultPlan(busy_rate=0.05, seed=1)) as crm:
        print(crm.url)          # http://127.0.0.1:PORT/MSCRMServices/2007/CrmService.asmx
        ...
        print(crm.stats()["connections_accepted"], crm.records("account"))
"""

from __future__ import annotations

from crmload.mock.faults import DEFAULT_FAULT_PLAN, FaultPlan
from crmload.mock.server import DEFAULT_MAX_BODY_BYTES, ConnState, MockCrm

__all__ = ["DEFAULT_FAULT_PLAN", "DEFAULT_MAX_BODY_BYTES", "ConnState", "FaultPlan", "MockCrm"]
