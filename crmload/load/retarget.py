"""Moving a run to a corrected URL (issue 16 #5b): ``--resume --url NEW`` on a journal made for another URL.

A wrong URL (a 404, a login page) sends nothing that lands, so the run may move freely while no row is done
by a send and none is in doubt. Once rows may have landed at the old URL, moving would silently leave them
there and never load them at the new one, so it takes ``--retarget``. Only the URL moves: another entity,
org, mode or key is another run. Each move is kept in the journal's meta as ``retarget.N`` (JSON: from, to,
at, counts, forced) and logged as a warning.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from crmload.errors import JournalError

if TYPE_CHECKING:
    from crmload.load.journal import Journal

__all__ = ["move_run"]

log = logging.getLogger("crmload.load.journal")


def move_run(journal: Journal, meta: dict[str, str], url: str, *, force: bool) -> None:
    """Record that ``journal``'s run now loads into ``url``, or raise ``JournalError`` if it may not move."""
    old = meta.get("target.url", "")
    sent, doubt = journal.sent_counts()
    if (sent or doubt) and not force:
        raise JournalError(
            f"journal {journal.path} belongs to a run at {old}, where {sent} rows are done and {doubt} in "
            f"doubt; moving it to {url} would never load those rows there. If {old} was wrong (nothing "
            "landed there), add --retarget to move the run anyway; otherwise use another --journal, or "
            "--restart to begin again"
        )
    forced = bool(sent or doubt)
    n = sum(1 for k in meta if k.startswith("retarget.")) + 1
    record: dict[str, object] = {"from": old, "to": url, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    record |= {"done": sent, "in_doubt": doubt, "forced": forced}
    journal.write_meta([("target.url", url), (f"retarget.{n}", json.dumps(record))])
    why = (
        f"--retarget with {sent} done and {doubt} in doubt left at the old URL"
        if forced
        else "nothing was sent successfully to the old URL"
    )
    log.warning("journal %s: run moved from %s to %s (%s)", journal.path, old, url, why)
