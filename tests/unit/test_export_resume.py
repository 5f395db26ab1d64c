"""Export resume without sockets: a scripted client pages by number when CRM sends MoreRecords with no cookie,
a run that dies after page 2 resumes at page 3 (not "finished"), and the file equals an uninterrupted one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmload.read import Exporter, ExportSpec
from crmload.soap.codec2007 import Page

IDS = [uuid.UUID(int=i + 1) for i in range(7)]


class Killed(Exception):
    """Stands in for the process dying after a page was saved."""


class Client:
    url = "http://crm.example/XRMServices/2011/Organization.svc/web"

    def __init__(self, die_after: int | None = None) -> None:
        self.calls: list[tuple[int, str | None]] = []
        self.die_after = die_after

    def stats(self) -> dict[str, Any]:
        return {"requests": len(self.calls)}

    def retrieve_pages(
        self,
        entity: str,
        where: Any,
        columns: Any,
        page_size: int,
        *,
        page_number: int,
        paging_cookie: str | None,
        fetch_xml: str | None,
    ) -> Iterator[Page]:
        while True:
            if self.die_after is not None and len(self.calls) == self.die_after:
                raise Killed
            self.calls.append((page_number, paging_cookie))
            start = (page_number - 1) * page_size
            chunk = IDS[start : start + page_size]
            more = start + page_size < len(IDS)
            yield Page(
                records=[{"accountid": i, "name": f"n{i.int}"} for i in chunk],
                more_records=more,
                paging_cookie=None,
            )
            if not more:
                return
            page_number += 1


def test_resume_pages_by_number_when_there_is_no_cookie(tmp_path: Path) -> None:
    spec = ExportSpec(entity="account", columns=("accountid", "name"), page_size=2)
    whole = tmp_path / "whole.csv"
    Exporter(Client(), spec).run(whole)
    out = tmp_path / "out.csv"
    with pytest.raises(Killed):
        Exporter(Client(die_after=2), spec).run(out)
    client = Client()
    summary = Exporter(client, spec).run(out, resume=True)
    assert client.calls == [(3, None), (4, None)]
    assert (summary.rows, summary.pages, summary.resumed_at_page) == (7, 4, 3)
    assert out.read_bytes() == whole.read_bytes()
    assert not (tmp_path / "out.csv.export-state.json").exists()
