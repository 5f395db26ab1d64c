"""The mock's inspection endpoints: ``GET /_mock/stats``, ``GET /_mock/records/<entity>``, ``POST
/_mock/reset``,
``POST /_mock/faults`` (a JSON fault plan; ``{}`` clears it; the answer is the plan in force)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from crmload.errors import ConfigError
from crmload.mock.faults import FaultPlan
from crmload.mock.http import Request

if TYPE_CHECKING:
    from crmload.mock.server import MockCrm

__all__ = ["handle_admin"]

_JSON = "application/json; charset=utf-8"


def _json(status: int, doc: Any) -> tuple[int, str, bytes]:
    return status, _JSON, json.dumps(doc, sort_keys=True).encode("utf-8")


def handle_admin(crm: MockCrm, req: Request) -> tuple[int, str, bytes]:
    """Answer one ``/_mock/...`` request with (status, content type, body)."""
    path = req.path
    if req.method == "GET" and path == "/_mock/stats":
        return _json(200, crm.stats())
    if req.method == "GET" and path.startswith("/_mock/records/"):
        return _json(200, crm.records(unquote(path[len("/_mock/records/") :])))
    if req.method == "POST" and path == "/_mock/reset":
        crm.reset()
        return _json(200, {"ok": True})
    if req.method == "POST" and path == "/_mock/faults":
        try:
            data = json.loads(req.body or b"{}")
            if not isinstance(data, dict):
                raise ConfigError("the fault plan must be a JSON object")
            plan = FaultPlan.from_dict(data)
        except (ValueError, ConfigError) as exc:
            return _json(400, {"error": str(exc)})
        crm.configure(plan)
        return _json(200, plan.to_dict())
    return _json(404, {"error": f"no such mock endpoint: {req.method} {path}"})
