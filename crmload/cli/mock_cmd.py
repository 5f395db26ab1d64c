"""``crmload mock``: run the mock CRM server (CRM 4.0 2007 endpoint and the Organization service) until
SIGINT/SIGTERM; prints the 2007 endpoint URL first."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from typing import Any

__all__ = ["register", "run"]

_EXAMPLES = """examples:
  python -m crmload mock --port 5555 --org Contoso
  python -m crmload mock --port 0 --latency-ms 20 --jitter-ms 10 --busy-rate 0.05 --retry-after 2 --seed 7
  python -m crmload mock --reset-after-commit-rate 0.01 --close-every 100 --max-connections 50
  python -m crmload mock --user 'CONTOSO\\alice:secret' --first-request-cost-ms 30
  python -m crmload mock --metadata extra.toml --max-body-bytes 16777216 --idle-timeout 120
  python -m crmload mock --token alice=SECRET1 --token bob=SECRET2 --max-batch-size 250 --exec-ms-per-record 2
  python -m crmload mock --limits 200/4/8 --window-s 10 --dop-hint 8 --exec-ms-per-record 2
  python -m crmload mock --tls-cert mock.pem --tls-key mock.key --client app1=SECRET --tenant contoso

The first stdout line is the endpoint URL, e.g. http://127.0.0.1:5555/MSCRMServices/2007/CrmService.asmx.
The Organization service is at /XRMServices/2011/Organization.svc/web on the same port and store.
With --client, a token authority for the client-credentials flow is at https://HOST:PORT/TENANT (pass it as
--authority to import); its tokens are accepted as the client id. MSAL needs HTTPS: give --tls-cert/--tls-key.
Inspect with GET /_mock/stats and GET /_mock/records/<entity>; POST /_mock/reset; POST /_mock/faults (JSON
plan); POST /_mock/limits (JSON service-protection limits, null for off).
"""


def _user(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected 'DOMAIN\\user:password'")
    return name, password


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return port


def register(subparsers: Any) -> None:
    """Add the ``mock`` subcommand."""
    p = subparsers.add_parser(
        "mock",
        help="run a mock CRM 4.0 server (for tests, benchmarks and rehearsals)",
        description="Serve a mock CRM 4.0 CrmService.asmx (2007 endpoint) on a real keep-alive socket.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=5555, help="port; 0 picks a free one (default: 5555)")
    p.add_argument(
        "--org", default="Contoso", help="OrganizationName the auth token must carry (default: Contoso)"
    )
    f = p.add_argument_group("fault injection (all seeded)")
    f.add_argument("--latency-ms", type=float, default=0.0, help="fixed delay per SOAP request, e.g. 20")
    f.add_argument(
        "--jitter-ms", type=float, default=0.0, help="extra uniform random delay in [0, N] ms, e.g. 10"
    )
    f.add_argument("--busy-rate", type=float, default=0.0, help="fraction answered HTTP 503, e.g. 0.05")
    f.add_argument(
        "--retry-after", type=float, default=None, metavar="S", help="Retry-After seconds on 503s, e.g. 2"
    )
    f.add_argument(
        "--reset-before-commit-rate", type=float, default=0.0, help="fraction reset before the store commits"
    )
    f.add_argument(
        "--reset-after-commit-rate",
        type=float,
        default=0.0,
        help="fraction reset after commit (maybe applied)",
    )
    f.add_argument(
        "--close-every", type=int, default=0, metavar="N", help="Connection: close every N responses"
    )
    f.add_argument(
        "--max-connections", type=int, default=0, metavar="N", help="503 + close beyond N open connections"
    )
    f.add_argument(
        "--first-request-cost-ms", type=float, default=0.0, help="extra delay on a connection's 1st request"
    )
    f.add_argument(
        "--busy-above-rate", type=float, default=0.0, metavar="R", help="503 when over R requests/s"
    )
    f.add_argument(
        "--exec-ms-per-record",
        type=float,
        default=0.0,
        metavar="MS",
        help="server execution time per record (a batch of 1000 costs 1000x), e.g. 2",
    )
    f.add_argument(
        "--silent-drop-rate", type=float, default=0.0, help="fraction of created records lost after success"
    )
    f.add_argument(
        "--mutate-rate", type=float, default=0.0, help="fraction of created records with one field changed"
    )
    f.add_argument("--seed", type=int, default=0, help="RNG seed for faults and generated ids (default: 0)")
    s = p.add_argument_group("server")
    s.add_argument(
        "--max-body-bytes", type=int, default=8 * 1024 * 1024, help="request body limit (default: 8 MiB)"
    )
    s.add_argument(
        "--idle-timeout", type=float, default=120.0, metavar="S", help="close idle keep-alive connections"
    )
    s.add_argument(
        "--user",
        action="append",
        type=_user,
        default=[],
        metavar="'DOMAIN\\user:password'",
        help="require NTLM for this user (repeatable)",
    )
    s.add_argument(
        "--auth-persist-single-request", action="store_true", help="NTLM authenticates one request only"
    )
    s.add_argument(
        "--metadata", default=None, metavar="FILE", help="JSON/TOML file adding entities/attributes/keys"
    )
    o = p.add_argument_group("Organization service (/XRMServices/2011/Organization.svc/web)")
    o.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="[USER=]TOKEN",
        help="accepted bearer token, as user USER (repeatable); without any, every caller is accepted",
    )
    o.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID=SECRET",
        help="serve a token authority that issues tokens to this client (repeatable)",
    )
    o.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="T",
        help="a tenant the token authority knows (repeatable; default: any)",
    )
    o.add_argument(
        "--token-lifetime",
        type=int,
        default=3600,
        metavar="S",
        help="expires_in of the issued tokens (default: 3600)",
    )
    s.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    s.add_argument(
        "--tls-key", metavar="PEM", help="the private key of --tls-cert (default: in the same file)"
    )
    o.add_argument(
        "--max-batch-size",
        type=int,
        default=1000,
        metavar="N",
        help="ExecuteMultiple MaxBatchSize (default: 1000)",
    )
    o.add_argument(
        "--no-integrity",
        action="store_true",
        help="accept lookups to records that do not exist (CRM faults them; so does the mock by default)",
    )
    o.add_argument(
        "--limits",
        default="6000/1200/52",
        metavar="R/E/C",
        help="service-protection limits per user: REQUESTS/EXEC_SECONDS/CONCURRENT per window, or 'off' "
        "(default: Dataverse's 6000/1200/52)",
    )
    o.add_argument(
        "--window-s", type=float, default=300.0, metavar="S", help="their sliding window (default: 300)"
    )
    o.add_argument(
        "--dop-hint",
        type=int,
        default=None,
        metavar="N",
        help="send x-ms-dop-hint: N (recommended parallelism)",
    )
    o.add_argument(
        "--penalty-step-s",
        type=float,
        default=None,
        metavar="S",
        help="how much each request sent while throttled extends the penalty (default: window / 100)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the server, print its URL, and serve until SIGINT/SIGTERM."""
    # Imported here so that ``crmload --help`` stays fast.
    from crmload.cli import UsageError  # noqa: PLC0415
    from crmload.errors import ConfigError  # noqa: PLC0415
    from crmload.mock import MockCrm  # noqa: PLC0415
    from crmload.mock.authority import parse_client_spec  # noqa: PLC0415
    from crmload.mock.bearer import parse_token_spec  # noqa: PLC0415

    if args.max_body_bytes <= 0 or args.idle_timeout <= 0 or args.max_batch_size <= 0:
        raise UsageError("--max-body-bytes, --idle-timeout and --max-batch-size must be positive")
    if args.token_lifetime < 1:
        raise UsageError("--token-lifetime must be at least 1 second")
    try:
        plan = _plan(args)
        tokens = dict(parse_token_spec(t) for t in args.token) or None
        limits = _limits(args)
        clients = dict(parse_client_spec(c) for c in args.client) or None
    except ConfigError as exc:  # a fault flag out of range: the command line is wrong
        raise UsageError(str(exc)) from None
    server = MockCrm(
        org=args.org,
        host=args.host,
        port=args.port,
        faults=plan,
        metadata=args.metadata,
        users=dict(args.user) or None,
        idle_timeout_s=args.idle_timeout,
        max_body_bytes=args.max_body_bytes,
        auth_persist_single_request=args.auth_persist_single_request,
        seed=args.seed,
        tokens=tokens,
        max_batch_size=args.max_batch_size,
        integrity=not args.no_integrity,
        limits=limits,
        tls=_tls(args),
        clients=clients,
        tenants=args.tenant or None,
        token_lifetime_s=args.token_lifetime,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    old = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server.start()
        except OSError as exc:  # in use, not an address of this host, not allowed: the user's to fix
            raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
        print(server.url, flush=True)
        print(f"crmload mock: serving org {args.org!r}; Ctrl-C to stop", file=sys.stderr, flush=True)
        print(f"crmload mock: Organization service at {server.url2011}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    stats = server.stats()
    print(
        f"crmload mock: stopped after {stats['requests']} requests "
        f"on {stats['connections_accepted']} connections",
        file=sys.stderr,
    )
    return 0


def _limits(args: argparse.Namespace) -> Any:
    from crmload.mock.protection import ServiceLimits  # noqa: PLC0415

    if args.limits.strip().lower() == "off":
        return None
    limits = ServiceLimits.parse(args.limits, window_s=args.window_s)
    return dataclasses.replace(limits, dop_hint=args.dop_hint, penalty_step_s=args.penalty_step_s)


def _tls(args: argparse.Namespace) -> Any:
    """The server-side TLS context of ``--tls-cert``/``--tls-key``, or None (plain HTTP)."""
    import ssl  # noqa: PLC0415

    from crmload.cli import UsageError  # noqa: PLC0415
    from crmload.errors import ConfigError  # noqa: PLC0415

    if args.tls_cert is None:
        if args.tls_key is not None:
            raise UsageError("--tls-key needs --tls-cert")
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {args.tls_cert}: {exc}") from None
    return ctx


def _plan(args: argparse.Namespace) -> Any:
    from crmload.mock import FaultPlan  # noqa: PLC0415

    return FaultPlan(
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        busy_rate=args.busy_rate,
        retry_after_s=args.retry_after,
        reset_before_commit_rate=args.reset_before_commit_rate,
        reset_after_commit_rate=args.reset_after_commit_rate,
        close_every=args.close_every,
        max_connections=args.max_connections,
        first_request_cost_ms=args.first_request_cost_ms,
        exec_ms_per_record=args.exec_ms_per_record,
        busy_above_rate=args.busy_above_rate,
        silent_drop_rate=args.silent_drop_rate,
        mutate_rate=args.mutate_rate,
        seed=args.seed,
    )
