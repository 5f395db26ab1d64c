"""The mock's inspection endpoints: ``GET /_mock/stats``, ``GET /_mock/records/<entity>``, ``POST
/_mock/reset``,
``POST /_mock/faults`` (a JSON fault plan; ``{}`` clears it; the answer is the plan in force),
``POST /_mock/limits`` (JSON service-protection limits, ``ServiceLimits`` fields; ``null`` turns them off;
``{}`` is Dataverse's defaults; the answer is the limits in force)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from crmload.errors import ConfigError
from crmload.mock.faults import FaultPlan
from crmload.mock.http import Request
from crmload.mock.protection import ServiceLimits

if TYPE_CHECKING:
    from crmload.mock.server import MockCrm

__all__ = ["handle_admin"]

_JSON = "application/json; charset=utf-8"


def _json(status: int, doc: Any) -> tuple[int, str, bytes]:
    return status, _JSON, json.dumps(doc, sort_keys=True).encode("utf-8")


def handle_admin(crm: MockCrm, req: Request) -> tuple[int, str, bytes]:  # noqa: PLR0911 - one per endpoint
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
    if req.method == "POST" and path == "/_mock/limits":
        return _limits(crm, req.body)
    return _json(404, {"error": f"no such mock endpoint: {req.method} {path}"})


def _limits(crm: MockCrm, body: bytes) -> tuple[int, str, bytes]:
    try:
        data = json.loads(body or b"null")
        if data is not None and not isinstance(data, dict):
            raise ConfigError("the limits must be a JSON object, or null to turn them off")
        limits = None if data is None else ServiceLimits.from_dict(data)
    except (ValueError, ConfigError) as exc:
        return _json(400, {"error": str(exc)})
    crm.configure_limits(limits)
    return _json(200, None if limits is None else limits.to_dict())
