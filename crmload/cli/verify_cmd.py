"""``crmload verify FILE.csv --entity ENTITY``: check a load against CRM (``crmload.read.Verifier``).

Takes the import's own flags for reading and mapping (``--map``, ``--key``, ``--encoding``, ``--delimiter``)
and its journal (default ``FILE.csv.crmload.sqlite`` when it exists). Writes every discrepancy to a CSV
(``entity, line, key, id, kind, field, sent, found``), prints a table per entity with PASS/FAIL (``--json``:
one object), and exits 0 when everything matches, 3 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
from pathlib import Path
from typing import Any

from crmload.cli import _flags
from crmload.cli.export_cmd import add_client_arguments, build_client

__all__ = ["register", "run"]

EPILOG = """\
examples:
  python -m crmload verify accounts.csv --entity account --key accountnumber --url ... --org Contoso
  python -m crmload verify contacts.csv --entity contact --map contacts.map.toml --sample 1000 --json
  python -m crmload verify accounts.csv --entity account --all   # also report records no row names
  python -m crmload verify accounts.csv --entity account --settle --match accountnumber

exit codes: 0 everything matches; 3 discrepancies (see the CSV); 1 fatal error; 2 usage error
"""


def register(subparsers: Any) -> None:
    """Add the ``verify`` subcommand."""
    p = subparsers.add_parser(
        "verify",
        help="reconcile a load against CRM: lost, missing, extra and differing rows",
        description="Check a CSV load (and its journal) against CRM with batched id reads, never counts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE.csv", help="the CSV that was imported")
    p.add_argument("--entity", type=_flags.entity, required=True, help="the entity it was loaded into")
    p.add_argument("--map", metavar="MAP.toml", help="the import's map file")
    p.add_argument("--key", metavar="COLUMN", help="the import's --key column")
    p.add_argument("--no-trim", action="store_true", help="the import ran with --no-trim")
    p.add_argument("--journal", metavar="PATH", help="default: FILE.csv.crmload.sqlite when it exists")
    p.add_argument("--no-journal", action="store_true", help="ignore any journal: check rows by their ids")
    p.add_argument(
        "--settle",
        action="store_true",
        help="with --match: settle in-doubt rows in the journal (one match: done; none: sent again on "
        "import --resume; several: reported, never guessed)",
    )
    p.add_argument("--match", metavar="ATTR", help="the attribute whose value finds an in-doubt row's record")
    p.add_argument("--sample", type=_flags.positive_int, metavar="N", help="compare ~N rows' values, not all")
    p.add_argument("--all", action="store_true", help="page the whole entity id-only: report extra records")
    p.add_argument("--batch", type=_flags.positive_int, default=500, help="ids per read (default 500)")
    p.add_argument("--discrepancies", metavar="PATH", help="default: FILE.discrepancies.csv beside the input")
    p.add_argument("--force", action="store_true", help="replace an existing discrepancies file")
    p.add_argument("--encoding", type=_flags.encoding, default="utf-8-sig", help="input encoding")
    p.add_argument("--delimiter", type=_flags.delimiter, default=",", help="field delimiter")
    add_client_arguments(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    """Run one verification; return the exit code."""
    import dataclasses  # noqa: PLC0415

    from crmload.cli import EXIT_OK, EXIT_REJECTS, UsageError  # noqa: PLC0415
    from crmload.load import CsvSource, Mapper, MapSpec  # noqa: PLC0415
    from crmload.read.settle import settle  # noqa: PLC0415
    from crmload.read.verify import DISCREPANCY_COLUMNS, Verifier, read_journal  # noqa: PLC0415

    src = Path(args.file)
    if not src.is_file():
        raise UsageError(f"no such file: {src}")
    out = Path(args.discrepancies) if args.discrepancies else src.with_name(src.stem + ".discrepancies.csv")
    if out.exists() and not args.force and not args.discrepancies:
        args.force = True  # our own default file, from an earlier verify: replaced
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; --force replaces it")
    jpath = Path(args.journal) if args.journal else Path(f"{src}.crmload.sqlite")
    use_journal = not args.no_journal and (args.journal or jpath.exists())
    if args.settle and not (args.match and use_journal):
        raise UsageError("--settle needs --match ATTR and the run's journal")
    spec = MapSpec.load(args.map) if args.map else None
    if args.no_trim:
        spec = dataclasses.replace(spec or MapSpec(), trim=False)
    mapper = Mapper(args.entity, spec=spec, key=args.key)
    with contextlib.ExitStack() as stack:
        client = build_client(args, stack)
        source = stack.enter_context(CsvSource(src, encoding=args.encoding, delimiter=args.delimiter))
        if source.header:
            mapper.prepare(list(source.header))
        fh = stack.enter_context(out.open("w", encoding="utf-8", newline=""))
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(DISCREPANCY_COLUMNS)
        settled = None
        if args.settle:  # before the check, which then sees the journal as settled
            with CsvSource(src, encoding=args.encoding, delimiter=args.delimiter) as rows:
                settled = settle(
                    client,
                    args.entity,
                    mapper=mapper,
                    journal=jpath,
                    rows=rows,
                    match=args.match,
                    sink=lambda d: writer.writerow(d.row()),
                )
        journal = read_journal(jpath) if use_journal else None
        verifier = Verifier(
            client,
            args.entity,
            mapper=mapper,
            journal=journal,
            sample=args.sample,
            batch=args.batch,
            all_records=args.all,
        )
        report = verifier.run(source, lambda d: writer.writerow(d.row()))
    code = EXIT_OK if report.passed else EXIT_REJECTS
    doc: dict[str, Any] = {
        "command": "verify",
        "exit_code": code,
        "discrepancies": str(out),
        "entities": [report.to_dict()],
    }
    if settled is not None:
        doc["settle"] = dataclasses.asdict(settled)
        if not args.json:
            print(f"settled {settled.settled}, to send again {settled.resend}, ambiguous {settled.ambiguous}")
    if args.json:
        print(json.dumps(doc, sort_keys=True, default=str), flush=True)
    else:
        _table([report.to_dict()], out)
    return code


def _table(entities: list[dict[str, Any]], out: Path) -> None:
    cols = (
        "entity",
        "rows",
        "done",
        "rejected",
        "in_doubt",
        "checked",
        "present",
        "lost",
        "differs",
        "extra",
    )
    print("  ".join(f"{c:>9}" for c in cols) + "  result")
    for e in entities:
        kinds, journal = e["kinds"], e["journal"]
        values = [
            e["entity"],
            e["rows"],
            journal.get("done", "-"),
            journal.get("rejected", "-"),
            journal.get("in_doubt", "-"),
            e["checked"],
            e["present"],
            kinds.get("lost", 0) + kinds.get("missing", 0),
            kinds.get("differs", 0),
            kinds.get("extra", 0),
        ]
        print("  ".join(f"{v!s:>9}" for v in values) + f"  {e['result']}")
    print(f"discrepancies: {out}", file=sys.stderr)
