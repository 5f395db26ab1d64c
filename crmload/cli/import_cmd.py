"""``crmload import FILE.csv --entity ENTITY``: the CSV migration, a thin shell over ``crmload.Loader``.

Flags become a ``CrmClient``, a ``Mapper``, a journal and a rejects writer; the summary goes to stdout
(``--json``: one JSON object), progress and logs to stderr. With no ``--url`` and no ``$CRMLOAD_URL`` an
embedded mock CRM is started in-process, so the README's demo runs anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crmload.cli import _flags, budget_opts, observe_opts, server_opts

_AUTH_MODULE = "crmload.cli.auth_opts"
try:  # issue 6 adds the authentication flags in its own module; until then there is none.
    _auth_opts: Any = importlib.import_module(_AUTH_MODULE)
except ModuleNotFoundError as _exc:
    if _exc.name != _AUTH_MODULE:
        raise
    _auth_opts = None

__all__ = ["open_client", "register", "run"]

EPILOG = """\
examples:
  python -m crmload import examples/accounts.csv --entity account
  python -m crmload import accounts.csv --entity account --key accountnumber \\
      --url http://crm/MSCRMServices/2007/CrmService.asmx --org Contoso
  python -m crmload import contacts.csv --entity contact --map contacts.map.toml --key contact_key --resume
  CRM_TOKEN=... python -m crmload import accounts.csv --entity account --token-env CRM_TOKEN \
      --url https://contoso.crm4.dynamics.com/ --batch-size auto
  python -m crmload import big.csv --entity account --key accountnumber --shard 2/4 --url ...   # host 2 of 4

exit codes: 0 all done; 3 finished with rejected or in-doubt rows; 1 fatal error; 2 usage error
"""


def _breaker_count(text: str) -> int:
    """``--breaker N``: an integer >= 0; anything else is a usage error (exit 2)."""
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0 (0 turns it off), not {text!r}")
    return count


def _shard(text: str) -> Any:
    """``--shard i/N``: a ``Shard``; a malformed one is a usage error (exit 2)."""
    from crmload.errors import ConfigError  # noqa: PLC0415 - lazy: --help stays fast
    from crmload.load.shard import Shard  # noqa: PLC0415

    try:
        return Shard.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: Any) -> None:
    """Add the ``import`` subcommand."""
    p = subparsers.add_parser(
        "import",
        help="load a CSV file into a CRM entity",
        description="Stream a CSV file into a CRM entity: typed mapping, workers, a journal with exact "
        "resume, "
        "a re-importable rejects file and a run summary.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE.csv", help="the CSV file to load")
    p.add_argument(
        "--entity", type=_flags.entity, required=True, help="target entity logical name, e.g. account"
    )
    p.add_argument(
        "--url",
        type=_flags.url,
        default=os.environ.get("CRMLOAD_URL"),
        help="CrmService.asmx (CRM 4.0) or Organization.svc/web URL, or an organisation's root URL "
        "(default $CRMLOAD_URL; if neither, an embedded mock CRM is started)",
    )
    p.add_argument(
        "--endpoint",
        choices=("2007", "2011"),
        help="the endpoint to speak when the URL does not say: 2007 (CRM 4.0) or 2011 (Organization service)",
    )
    p.add_argument(
        "--org",
        default=os.environ.get("CRMLOAD_ORG"),
        help="organization (default $CRMLOAD_ORG); required for CRM 4.0, taken from the URL on 2011",
    )
    p.add_argument("--map", metavar="MAP.toml", help="column -> attribute mapping with types")
    p.add_argument("--key", metavar="COLUMN", help="deterministic id = uuid5(entity namespace, value)")
    p.add_argument(
        "--no-trim", action="store_true", help="keep spaces around values (a file from crmload export)"
    )
    p.add_argument("--mode", choices=("create", "update", "upsert", "delete"), default="create")
    p.add_argument("--workers", type=_flags.positive_int, default=4, help="concurrent calls (default 4)")
    p.add_argument(
        "--rate",
        type=_flags.rate,
        metavar="N|auto|unlimited",
        help="calls per second (default: the port budget)",
    )
    p.add_argument(
        "--batch-size",
        type=_flags.batch_size,
        default="auto",
        metavar="N|auto",
        help="rows per request (one ExecuteMultiple): auto adapts to the server on the Organization service; "
        "CRM 4.0 sends 1 (default auto)",
    )
    p.add_argument(
        "--batch-target-s",
        type=_flags.positive_float,
        default=3.0,
        metavar="S",
        help="server seconds each auto-sized batch aims at (default 3)",
    )
    p.add_argument(
        "--timeout",
        type=_flags.timeout,
        metavar="S|CONNECT,READ",
        help="seconds to wait for a connection and for an answer, e.g. 10 or 5,120 (default 10,120)",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="i/N",
        help="load only shard i of N (from 1): rows whose --key hashes there, else by line number; N hosts "
        "split one file with no coordinator, each with its own journal (see 'crmload status')",
    )
    p.add_argument(
        "--journal",
        metavar="PATH",
        help="default: FILE.csv.crmload.sqlite beside the input (FILE.csv.shard-i-of-N.crmload.sqlite)",
    )
    p.add_argument("--resume", action="store_true", help="continue a run from its journal")
    p.add_argument("--restart", action="store_true", help="erase this run's journal and begin again")
    p.add_argument(
        "--retarget",
        action="store_true",
        help="with --resume and a new --url: move the run even though rows may have landed at the old URL",
    )
    p.add_argument(
        "--rejects",
        metavar="PATH",
        help="default: FILE.rejects.csv beside the input (in-doubt rows: FILE.in-doubt.csv)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="let the rejects (or in-doubt) file replace an existing file that crmload did not write",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read, map and validate every row; send and write nothing "
        "(findings on stdout, or to --rejects PATH)",
    )
    p.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the start-up check (WhoAmI and the entity) that fails fast on URL, TLS, auth, org, entity",
    )
    p.add_argument(
        "--breaker",
        type=_breaker_count,
        default=20,
        metavar="N",
        help="stop the run, rows left pending, when N sent rows in a row fail with one run-level fault "
        "(privilege, organisation, unknown entity or attribute); 0 never (default 20)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--encoding",
        type=_flags.encoding,
        default="utf-8-sig",
        help="input encoding (default utf-8-sig: drops a BOM)",
    )
    p.add_argument(
        "--delimiter", type=_flags.delimiter, default=",", help="field delimiter (default ','; 'tab' for tab)"
    )
    p.add_argument(
        "--max-record-lines",
        type=_flags.positive_int,
        metavar="N",
        help="most lines one quoted record may span; past it, its first line is rejected (default 1000)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less logging")
    if _auth_opts is not None:
        _auth_opts.add_arguments(p)
    budget_opts.add_arguments(p)
    observe_opts.add_arguments(p)
    server_opts.add_arguments(p)
    p.set_defaults(func=run, _parser=p)


def _build_auth(args: argparse.Namespace) -> object | None:
    """The ``auth=`` given to CrmClient: built by ``crmload.cli.auth_opts`` (issue 6) when it exists."""
    if _auth_opts is None:
        return None
    auth: object | None = _auth_opts.build_auth(args)
    return auth


def _verify(args: argparse.Namespace) -> bool | str:
    """``--ca-bundle`` (from ``crmload.cli.auth_opts``), else the system's CAs."""
    if _auth_opts is None:
        return True
    value: bool | str = _auth_opts.verify(args)
    return value


def _say(args: argparse.Namespace, text: str) -> None:
    if getattr(args, "quiet", 0) <= 0:
        print(f"crmload: {text}", file=sys.stderr)


def _usage(args: argparse.Namespace, text: str) -> int:
    from crmload.cli import UsageError  # noqa: PLC0415 - the package imports this module

    raise UsageError(text)


def run(args: argparse.Namespace) -> int:
    """Run one import; return the exit code."""
    if args.resume and args.restart:
        return _usage(args, "--resume and --restart exclude each other")
    if args.retarget and not args.resume:
        return _usage(args, "--retarget moves a run: it needs --resume")
    src = Path(args.file)
    if not src.is_file():
        return _usage(args, f"no such file: {src}")
    with contextlib.ExitStack() as stack:
        url, org, rate = args.url, args.org, args.rate
        journal = Path(args.journal) if args.journal else None
        args.temp_journal = False
        if not url and not args.dry_run:
            url, org, rate = _embedded_mock(args, stack, org, rate)
            if journal is None:
                # A fresh journal per demo run: the embedded mock's records vanish with it anyway.
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="crmload-"))
                journal = Path(tmp) / (src.name + ".crmload.sqlite")
                args.temp_journal = True
        if not org and not args.dry_run and _dialect(args, url) == "2007":
            return _usage(args, "--org is required for CRM 4.0 (or set $CRMLOAD_ORG)")
        return _load(args, stack, src, url, org or "", rate, journal)
    return 1  # pragma: no cover - the with block always returns


def _dialect(args: argparse.Namespace, url: str | None) -> str | None:
    """The endpoint ``url`` speaks (``--endpoint`` overrides); a URL and an endpoint that disagree: exit 2."""
    if not url:
        return args.endpoint  # type: ignore[no-any-return]
    from crmload.errors import ConfigError  # noqa: PLC0415
    from crmload.soap.dialect import select_url  # noqa: PLC0415 - lazy: --help stays fast

    try:
        return select_url(url, args.endpoint)[0]
    except ConfigError as exc:
        from crmload.cli import UsageError  # noqa: PLC0415 - the package imports this module

        raise UsageError(f"--url: {exc}") from None


def _embedded_mock(
    args: argparse.Namespace, stack: contextlib.ExitStack, org: str | None, rate: str | None
) -> tuple[str, str, str]:
    from crmload.mock import MockCrm  # noqa: PLC0415 - lazy: --help stays fast

    server = stack.enter_context(MockCrm(org=org or "Contoso"))
    url = server.url2011 if args.endpoint == "2011" else server.url
    _say(
        args,
        f"no --url or $CRMLOAD_URL: loading into an embedded mock CRM at {url} "
        "(its records vanish when this command ends)",
    )
    # The rate limit protects a real server; the always-on connection guard still protects the ports.
    return url, org or "Contoso", rate or "unlimited"


def _load(  # noqa: PLR0917 - private step of run()
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    src: Path,
    url: str | None,
    org: str,
    rate_text: str | None,
    journal: Path | None,
) -> int:
    from crmload.errors import ConfigError  # noqa: PLC0415
    from crmload.load import CsvSource, Mapper, MapSpec  # noqa: PLC0415 - lazy: --help stays fast
    from crmload.load.outfiles import output_paths  # noqa: PLC0415

    default_journal = journal is None
    tag = args.shard.suffix if args.shard else ""  # shards on one host never share a default file
    journal = journal or Path(f"{src}{tag}.crmload.sqlite")
    try:
        rejects, in_doubt = output_paths(
            src, args.rejects, journal, dry_run=args.dry_run, force=args.force, tag=tag
        )
    except ConfigError as exc:
        return _usage(args, str(exc))
    spec = MapSpec.load(args.map) if args.map else None
    if args.no_trim:  # an export's file: its strings are exactly what CRM holds, spaces included
        spec = dataclasses.replace(spec or MapSpec(), trim=False)
    client = None
    if not args.dry_run:
        assert url is not None  # run() starts the embedded mock when no URL was given
        client = open_client(args, stack, url, org, rate_text)
        if not args.no_preflight:  # before the input is read or a journal opened: a failure leaves no trace
            client.preflight(args.entity)
    limits = {"max_record_lines": args.max_record_lines} if args.max_record_lines else {}
    source = stack.enter_context(CsvSource(src, encoding=args.encoding, delimiter=args.delimiter, **limits))
    if not source.header:
        _say(args, f"{src} is empty: nothing to load")
    mapper = Mapper(args.entity, spec=spec, key=args.key)
    progress = observe_opts.build_progress(args, client)
    if default_journal and args.resume and not journal.exists():
        _say(args, "no journal to resume: starting a new run")
    try:
        loader = _loader(args, client, mapper, journal, rejects, in_doubt, progress)
    except ConfigError as exc:  # a batch size the endpoint cannot take
        return _usage(args, str(exc))
    summary = observe_opts.run_watched(args, loader, source, client, src, _stop_on_sigint(args, loader))
    if args.temp_journal:
        summary.journal = None
    print(summary.to_json() if args.json else summary.render(), flush=True)
    resume = "--resume continues the run" if summary.journal else "no journal was kept: run again"
    if summary.fatal:
        print(f"crmload: error: {summary.fatal}; {resume}", file=sys.stderr)
    elif summary.interrupted:
        print(f"crmload: error: interrupted with {summary.pending} rows pending; {resume}", file=sys.stderr)
    code: int = summary.exit_code
    return code


def open_client(
    args: argparse.Namespace, stack: contextlib.ExitStack, url: str, org: str, rate_text: str | None
) -> Any:
    """The one ``CrmClient`` of a run, from the shared flags (import and migrate build it here)."""
    from crmload.client import CrmClient  # noqa: PLC0415 - lazy: --help stays fast
    from crmload.throttle import RateLimit  # noqa: PLC0415

    rate = RateLimit.parse(rate_text) if rate_text else None
    options: dict[str, Any] = {
        "org": org or None,
        "endpoint": args.endpoint,
        "workers": args.workers,
        "rate": rate,
        "timeout": args.timeout,
        "verify": _verify(args),
        "budget_store": budget_opts.build_store(args),
        "server_limits": server_opts.server_limits(args),
    }
    identities = server_opts.identity_auths(args)
    if identities:  # a pool: each identity its own client and server budget (crmload.identities)
        from crmload.identities import IdentityPool  # noqa: PLC0415

        return stack.enter_context(IdentityPool.open(url, identities, **options))
    return stack.enter_context(CrmClient(url, auth=_build_auth(args), **options))


def _loader(  # noqa: PLR0917 - private step of _load()
    args: argparse.Namespace,
    client: Any,
    mapper: Any,
    journal: Path,
    rejects: Any,
    in_doubt: Any,
    progress: Any,
) -> Any:
    from crmload.load import Loader  # noqa: PLC0415
    from crmload.load.sizing import BatchPolicy  # noqa: PLC0415

    return Loader(
        client,
        args.entity,
        mode=args.mode,
        mapper=mapper,
        workers=args.workers,
        journal=journal,
        rejects=rejects,
        in_doubt=in_doubt,
        force=args.force,
        resume=args.resume,
        restart=args.restart,
        retarget=args.retarget,
        dry_run=args.dry_run,
        progress=progress,
        breaker=args.breaker,
        batch_size=args.batch_size,
        batch_policy=BatchPolicy(target_s=args.batch_target_s),
        shard=args.shard,
    )


@contextlib.contextmanager
def _stop_on_sigint(args: argparse.Namespace, loader: Any) -> Iterator[None]:
    """First Ctrl-C: let calls in flight finish and print the summary (exit 130). Second: quit at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; a caller elsewhere keeps its own
        return

    def on_sigint(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _say(args, "interrupted: finishing the calls in flight (Ctrl-C again to quit now)")
        loader.stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
