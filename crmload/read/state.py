"""The small state file an export keeps beside its output, so ``--resume`` continues at the next page.

``OUT.csv.export-state.json`` is rewritten (temp file + rename) after each page is flushed to the CSV: the
CSV's size at that point, the next page number and its paging cookie, and a fingerprint of the query, so a
resume with other flags or another server is refused instead of splicing two exports. It holds the URL
without credentials (``public_url``) and nothing else that came from the command line's secrets.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crmload.errors import ConfigError

__all__ = ["ExportState", "fingerprint", "state_path"]

FORMAT = 1


def state_path(output: Path) -> Path:
    """Where the state of an export to ``output`` lives."""
    return output.with_name(output.name + ".export-state.json")


def fingerprint(query: dict[str, Any]) -> str:
    """A stable digest of what was asked (entity, columns, filter, fetch, page size, keys)."""
    text = json.dumps(query, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(slots=True, kw_only=True)
class ExportState:
    """Where an export stands after its last whole page."""

    url: str
    entity: str
    query: str
    header: list[str]
    pages: int = 0
    rows: int = 0
    bytes: int = 0
    next_page: int = 1
    cookie: str | None = None
    #: False once the last page is written (a page may say MoreRecords without a cookie: paging by number).
    more: bool = True

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old state or the new one, never half of either."""
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump({"format": FORMAT, **asdict(self)}, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ExportState:
        """Read a state file; a ConfigError when it is not one this version wrote."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.pop("format", None) != FORMAT:
                raise ValueError("unknown format")
            return cls(**doc)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path} is not an export state file this crmload wrote ({exc})") from None
