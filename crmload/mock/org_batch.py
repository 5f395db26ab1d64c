"""ExecuteMultiple for the mock's Organization service, with Microsoft's documented semantics:

- more than ``max_batch_size`` requests: one whole-request fault *before any item runs*, carrying
  ``ErrorDetails["MaxBatchSize"]`` (an int);
- each item runs on its own (its own "transaction"), and a faulted item leaves the others applied;
- ``ContinueOnError=false`` stops after the first fault; ``ReturnResponses=false`` returns only faulted items.
  With faults at items 3 and 5 of 6 the four settings return 6/3/2/1 items;
- a nested ExecuteMultiple faults its item; every returned item carries its 0-based ``RequestIndex``.
"""

from __future__ import annotations

import logging

from lxml import etree

from crmload.mock.entity import invalid
from crmload.mock.envelope import CODE_UNEXPECTED, SoapFault, attr_qname, child, text_of
from crmload.mock.org_envelope import CODE_MAX_BATCH, OrgFault, fault_children, timestamp
from crmload.mock.org_ops import Call, run_message
from crmload.soap import ns

__all__ = ["execute_multiple"]

log = logging.getLogger(__name__)

L = ns.XRM2012
_REQUEST = ns.qn(L, "OrganizationRequest")


def _flag(settings: etree._Element, name: str) -> bool:
    text = text_of(child(settings, L, name))
    if text is None:
        raise invalid(f"ExecuteMultipleSettings.{name} is required.")
    return text.strip().lower() in ("true", "1")


def _item(index: int, fault: SoapFault | None, rtype: str = "", name: str = "", results: str = "") -> str:
    if fault is not None:
        body = f'<l:Fault xmlns="{ns.XRM2011}">{fault_children(fault, timestamp(), prefix="b")}</l:Fault>'
        response = '<l:Response i:nil="true"/>'
    else:
        body = '<l:Fault i:nil="true"/>'
        response = (
            f'<l:Response i:type="{rtype}"><a:ResponseName>{name}</a:ResponseName>'
            f"<a:Results>{results}</a:Results></l:Response>"
        )
    return (
        f"<l:ExecuteMultipleResponseItem>{body}<l:RequestIndex>{index}</l:RequestIndex>{response}"
        "</l:ExecuteMultipleResponseItem>"
    )


def _requests(params: dict[str, etree._Element | None]) -> list[etree._Element]:
    requests = params.get("Requests")
    settings = params.get("Settings")
    if requests is None or attr_qname(requests) != (L, "OrganizationRequestCollection"):
        raise invalid("ExecuteMultipleRequest needs Requests (an OrganizationRequestCollection).")
    if settings is None or attr_qname(settings) != (L, "ExecuteMultipleSettings"):
        raise invalid("ExecuteMultipleRequest needs Settings (ExecuteMultipleSettings).")
    items = list(requests.iterchildren(tag=etree.Element))
    for el in items:
        if el.tag != _REQUEST:
            raise invalid(f"Unexpected element {el.tag!r} in the Requests collection.")
    return items


def execute_multiple(call: Call, params: dict[str, etree._Element | None]) -> str:
    """Run the batch; return the Results children (IsFaulted, Responses)."""
    items = _requests(params)
    settings = params["Settings"]
    assert settings is not None  # _requests checked it
    continue_on_error, return_responses = (
        _flag(settings, "ContinueOnError"),
        _flag(settings, "ReturnResponses"),
    )
    limit = call.ctx.max_batch_size
    if len(items) > limit:
        raise OrgFault(
            CODE_MAX_BATCH,
            f"The number of requests ({len(items)}) in ExecuteMultipleRequest exceeds the maximum batch size "
            f"of {limit}.",
            kind="max_batch_size",
            details={"MaxBatchSize": ("int", str(limit))},
        )
    call.batch_size = len(items)
    out: list[str] = []
    faulted = False
    for index, req in enumerate(items):
        try:
            rtype, name, results = run_message(call, req, nested=True)
        except SoapFault as fault:
            faulted = True
            call.item_faults[fault.code] += 1
            out.append(_item(index, fault))
            if not continue_on_error:
                break
            continue
        except Exception:  # a mock bug costs its item, as an unexpected platform error would
            log.exception("mock CRM failed on batch item %s", index)
            faulted = True
            out.append(_item(index, SoapFault(CODE_UNEXPECTED, "An unexpected error occurred.")))
            if not continue_on_error:
                break
            continue
        if return_responses:
            out.append(_item(index, None, rtype, name, results))
    return (
        f'<a:KeyValuePairOfstringanyType><b:key>IsFaulted</b:key><b:value i:type="c:boolean">'
        f"{'true' if faulted else 'false'}</b:value></a:KeyValuePairOfstringanyType>"
        "<a:KeyValuePairOfstringanyType><b:key>Responses</b:key>"
        '<b:value i:type="l:OrganizationResponseCollection">'
        f"{''.join(out)}</b:value></a:KeyValuePairOfstringanyType>"
    )
