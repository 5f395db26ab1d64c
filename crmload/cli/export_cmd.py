"""``crmload export --entity ENTITY -o OUT.csv``: page an entity out of CRM into a CSV ``import`` takes back.

A thin shell over ``crmload.read.Exporter``: flags become a ``CrmClient`` (the same one import builds: rate,
timeout, auth, TLS) and an ``ExportSpec``; the summary goes to stdout (``--json``: one object), the progress
bar (rows and pages; an ETA with ``--expect N``) and logs to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from crmload.cli import _flags
from crmload.cli.import_cmd import _auth_opts, _build_auth, _verify

__all__ = ["add_client_arguments", "build_client", "register", "run"]

EPILOG = """\
examples:
  python -m crmload export --entity account --org Contoso \\
      --url http://crm/MSCRMServices/2007/CrmService.asmx --all-columns -o accounts.csv
  python -m crmload export --entity contact --url https://contoso.crm4.dynamics.com/ \\
      --columns contactid,fullname,parentcustomerid --where statecode=0 --key-of account=accountnumber \\
      -o contacts.csv
  python -m crmload export --entity account --url ... -o accounts.csv --resume   # after an interruption

exit codes: 0 exported; 1 fatal error (resume with --resume); 2 usage error; 130 interrupted
"""


def add_client_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every command that talks to CRM shares with ``import`` (URL, org, rate, timeout, auth)."""
    p.add_argument("--url", type=_flags.url, default=os.environ.get("CRMLOAD_URL"), required=False)
    p.add_argument("--org", default=os.environ.get("CRMLOAD_ORG"), help="organization (default $CRMLOAD_ORG)")
    p.add_argument("--rate", type=_flags.rate, metavar="N|auto|unlimited", help="calls per second")
    p.add_argument(
        "--timeout", type=_flags.timeout, metavar="S|CONNECT,READ", help="seconds (default 10,120)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less logging")
    if _auth_opts is not None:
        _auth_opts.add_arguments(p)


def build_client(args: argparse.Namespace, stack: contextlib.ExitStack) -> Any:
    """A ``CrmClient`` from the shared flags (``--url`` is required: an empty mock has nothing to read)."""
    from crmload.cli import UsageError  # noqa: PLC0415 - the package imports this module
    from crmload.client import CrmClient  # noqa: PLC0415 - lazy: --help stays fast
    from crmload.throttle import RateLimit  # noqa: PLC0415

    if not args.url:
        raise UsageError("--url is required (or set $CRMLOAD_URL)")
    rate = RateLimit.parse(args.rate) if args.rate else None
    return stack.enter_context(
        CrmClient(
            args.url,
            org=args.org,
            rate=rate,
            timeout=args.timeout,
            auth=_build_auth(args),
            verify=_verify(args),
        )
    )


def _key_of(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        entity, sep, attr = item.partition("=")
        if not sep or not entity.strip() or not attr.strip():
            raise argparse.ArgumentTypeError(f"--key-of {item!r}: expected entity=attribute")
        out[entity.strip().lower()] = attr.strip().lower()
    return out


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export",
        help="page an entity out of CRM into a CSV that import takes back",
        description="Export an entity to CSV with typed headers, page by page (flat memory), resumable.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--entity", type=_flags.entity, help="entity logical name, e.g. account")
    cols = p.add_mutually_exclusive_group()
    cols.add_argument("--columns", metavar="A,B,C", help="attributes to export, in this order")
    cols.add_argument("--all-columns", action="store_true", help="every attribute the metadata knows")
    cols.add_argument("--fetch", metavar="FILE.xml", help="a FetchXML query (Organization service)")
    p.add_argument(
        "--where", action="append", default=[], metavar="ATTR=VALUE", help="equal condition, ANDed"
    )
    p.add_argument("--page-size", type=_flags.positive_int, default=5000, help="records per page (max 5000)")
    p.add_argument("--key-of", action="append", default=[], metavar="ENTITY=ATTR", help="lookups by key")
    p.add_argument("-o", "--output", required=True, metavar="OUT.csv", help="the CSV to write")
    p.add_argument("--resume", action="store_true", help="continue an interrupted export at its next page")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--expect", type=_flags.positive_int, metavar="N", help="rows expected (progress ETA)")
    add_client_arguments(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    """Run one export; return the exit code."""
    import json  # noqa: PLC0415

    from crmload.cli import UsageError  # noqa: PLC0415
    from crmload.errors import ConfigError  # noqa: PLC0415
    from crmload.metadata import load_metadata  # noqa: PLC0415
    from crmload.read import Exporter, ExportSpec, parse_where  # noqa: PLC0415

    if not args.entity and not args.fetch:
        raise UsageError("--entity is required (or --fetch FILE.xml, which names it)")
    if not (args.columns or args.all_columns or args.fetch):
        raise UsageError("name the columns: --columns a,b,c, --all-columns or --fetch FILE.xml")
    metadata = load_metadata()
    try:
        key_of = _key_of(args.key_of)
        entity = (args.entity or "").lower()
        meta = metadata.entity(entity) if metadata.has(entity) else None
        fetch_xml = Path(args.fetch).read_text(encoding="utf-8") if args.fetch else None
        columns = tuple(c.strip() for c in args.columns.split(",") if c.strip()) if args.columns else None
        spec = ExportSpec(
            entity=entity,
            columns=columns,
            where=parse_where(args.where, meta) or None,
            fetch_xml=fetch_xml,
            page_size=args.page_size,
            key_of=key_of,
        )
    except (ConfigError, argparse.ArgumentTypeError) as exc:
        raise UsageError(str(exc)) from None
    with contextlib.ExitStack() as stack:
        client = build_client(args, stack)
        if fetch_xml is not None and client.endpoint == "2007":
            raise UsageError(
                "--fetch pages FetchXML on the Organization service; on CRM 4.0 use --columns/--where"
            )
        bar = _bar(args)
        if bar is not None:
            stack.callback(bar.close)

        def on_page(rows: int, pages: int) -> None:
            if bar is not None:
                bar.update(rows - bar.n)
                bar.set_postfix(pages=pages, refresh=False)

        exporter = Exporter(client, spec, metadata=metadata, on_page=on_page)
        try:
            summary = exporter.run(Path(args.output), resume=args.resume, force=args.force)
        except ConfigError as exc:
            if "exists" in str(exc) or "resume" in str(exc):
                raise UsageError(str(exc)) from None
            raise
    if args.json:
        print(json.dumps(summary.to_dict(), sort_keys=True), flush=True)
    else:
        resumed = f", resumed at page {summary.resumed_at_page}" if summary.resumed_at_page else ""
        rows, pages = summary.rows, summary.pages
        print(f"exported {rows} {summary.entity} rows in {pages} pages to {summary.output}{resumed}")
    return 0


def _bar(args: argparse.Namespace) -> Any:
    if args.no_progress or args.quiet > 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # noqa: PLC0415 - only a terminal needs the bar

    return tqdm(total=args.expect, unit="rows", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
