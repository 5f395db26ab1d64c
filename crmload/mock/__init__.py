"""A mock CRM server for tests, benchmarks and rehearsals: a real HTTP/1.1 keep-alive server speaking the CRM
4.0 2007 endpoint and the Organization service (``/XRMServices/2011/Organization.svc/web``) over one store.

Example::

    from crmload.mock import FaultPlan, MockCrm

    with MockCrm(org="Contoso", faults=FaultPlan(busy_rate=0.05, seed=1)) as crm:
        print(crm.url)          # http://127.0.0.1:PORT/MSCRMServices/2007/CrmService.asmx
        print(crm.url2011)      # http://127.0.0.1:PORT/XRMServices/2011/Organization.svc/web
        ...
        print(crm.stats()["connections_accepted"], crm.records("account"))
"""

from __future__ import annotations

from crmload.mock.faults import DEFAULT_FAULT_PLAN, FaultPlan
from crmload.mock.protection import DEFAULT_SERVICE_LIMITS, ServiceLimits
from crmload.mock.server import DEFAULT_MAX_BODY_BYTES, ConnState, MockCrm

__all__ = [
    "DEFAULT_FAULT_PLAN",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_SERVICE_LIMITS",
    "ConnState",
    "FaultPlan",
    "MockCrm",
    "ServiceLimits",
]
