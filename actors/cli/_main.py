"""``tgqr``: the command line. User mistakes print one line on stderr and exit non-zero.

Client commands talk to a running service over NATS (``--nats URL``, default: the embedded
server's URL that ``tgqr up`` wrote under the data directory); ``up`` and ``demo`` run it.
This module holds those two, the parser and :func:`main`; the client commands live in
:mod:`._login` and :mod:`._admin`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, cast

import anyio
import msgspec

from actors.keyfiles import PRIVATE_UMASK
from actors.login import MAX_TTL_S
from actors.service import (
    ConfigError,
    NatsConnectError,
    NatsServerError,
    ServiceConfig,
)

from ._admin import (
    cmd_audit,
    cmd_metrics,
    cmd_rebuild,
    cmd_sim_scan,
    cmd_status,
    cmd_vault_rotate,
)
from ._args import CliParser, int_in, iso_time, tenant_arg
from ._backup import add_backup_commands
from ._cluster import add_cluster_command
from ._connection import EXIT_FAIL, EXIT_OK, CliError, data_dir
from ._link import cmd_link
from ._logformat import LogFormatError, log_formatter
from ._login import cmd_login, cmd_simple
from ._page import add_page_command
from ._session import add_session_commands
from ._signals import until_stopped
from ._sim_devices import add_sim_device_commands
from ._sim_serve import add_sim_serve_command
from ._tenant import cmd_tenant_repair

__all__ = ["main"]


async def _cmd_up(args: argparse.Namespace) -> int:
    from actors.service import lock_data_dir

    # Settings first (they write nothing): a mistake there leaves the directory untouched.
    config = ServiceConfig.from_env(
        data_dir=data_dir(args),
        nats=args.nats,
        creds=args.creds,
        nkey=args.nkey,
        replicas=args.replicas,
        http=args.http,
        metrics=args.metrics,
        sim=args.sim,
    )
    # Before anything else: a second `tgqr up` on this directory changes nothing in it.
    with lock_data_dir(config.data_dir):
        return await _serve(config)


async def _serve(config: ServiceConfig) -> int:
    from actors.service import run_service, tune_gc

    tune_gc()
    async with anyio.create_task_group() as tg:
        running = await tg.start(run_service, config)
        mode = "simulator" if running.sim else "Telegram"
        mode = "shared simulator" if config.simulated and config.sim_shared else mode
        page = f", page {running.page.url}" if running.page else ""
        page += f", metrics {running.metrics_url}/metrics" if running.metrics_url else ""
        print(
            f"tgqr up: NATS {running.nats_url}, {mode}{page}, data in {config.data_dir} "
            "(Ctrl-C stops)",
            flush=True,
        )
        await until_stopped()
        # Every part bounds its own clean-up (shielded, a few seconds at most).
        tg.cancel_scope.cancel()
    print("stopped", flush=True)
    return EXIT_OK


async def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    code: int = await run_demo(data_dir(args) / "demo")
    return code


# --- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = CliParser(add_help=False)
    common.add_argument(
        "--nats", help="NATS URL[,URL...] (default: the embedded server of `tgqr up`)"
    )
    common.add_argument("--data", help="data directory (default: $TGQR_DATA or var)")
    common.add_argument(
        "--creds", metavar="FILE", help="NATS .creds file (default: $TGQR_NATS_CREDS)"
    )
    common.add_argument(
        "--nkey", metavar="FILE", help="NATS nkey seed file (default: $TGQR_NATS_NKEY)"
    )
    parser = CliParser(prog="tgqr", description="Telegram QR logins for many tenants.")
    # (typed as plain ArgumentParser's: the session and page commands register themselves)
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )

    up = sub.add_parser("up", parents=[common], help="serve until SIGINT/SIGTERM")
    up.add_argument(
        "--replicas",
        type=int_in(1),
        default=1,
        help="stream and bucket replicas (1..5; above 1 needs a cluster: --nats)",
    )
    up.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="the end user's page (default: $TGQR_HTTP or 127.0.0.1:8080; off: none)",
    )
    up.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="/metrics, /healthz, /readyz (default: $TGQR_METRICS or 127.0.0.1:9464; off: none)",
    )
    up.add_argument(
        "--sim",
        choices=("own", "shared"),
        help="simulator mode: own simulator (default), or `tgqr sim serve`'s ($TGQR_SIM)",
    )
    up.set_defaults(run=_cmd_up)

    login = sub.add_parser("login", parents=[common], help="log a tenant in by QR")
    login.add_argument("tenant", type=tenant_arg)
    login.add_argument(
        "--expect-user", type=int_in(1), help="only this Telegram user id may log in"
    )
    login.add_argument(
        "--ttl", type=int_in(1, MAX_TTL_S), help="seconds the attempt may take (1..600)"
    )
    login.add_argument("--force", action="store_true", help="replace an active or authorized login")
    login.set_defaults(run=cmd_login)

    for verb, text in (
        ("password", "send the 2FA password (no echo, or stdin)"),
        ("cancel", "cancel a pending login"),
        ("logout", "log the authorized session out"),
    ):
        p = sub.add_parser(verb, parents=[common], help=text)
        p.add_argument("tenant", type=tenant_arg)
        p.set_defaults(run=cmd_simple)

    link = sub.add_parser("link", parents=[common], help="print a link to the login page")
    link.add_argument("tenant", type=tenant_arg)
    link.add_argument(
        "--ttl", type=int_in(1, MAX_TTL_S), help="seconds the link works (1..600, default 600)"
    )
    link.set_defaults(run=cmd_link)

    status = sub.add_parser("status", parents=[common], help="status projection")
    status.add_argument("tenant", nargs="?", type=tenant_arg)
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=cmd_status)

    metrics = sub.add_parser("metrics", parents=[common], help="metrics projection")
    metrics.add_argument("--window", type=int_in(1), help="window in seconds")
    metrics.add_argument("--json", action="store_true")
    metrics.set_defaults(run=cmd_metrics)

    audit = sub.add_parser("audit", parents=[common], help="replay the event log from JetStream")
    audit.add_argument("tenant", nargs="?", type=tenant_arg)
    audit.add_argument("--since", type=iso_time)
    audit.add_argument("--until", type=iso_time)
    audit.add_argument("--type", action="append", help="event type (repeatable)")
    audit.add_argument(
        "--verify", action="store_true", help="check the hash chains; exit 1 on a break"
    )
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(run=cmd_audit)

    projections = sub.add_parser("projections", help="projection maintenance")
    psub = projections.add_subparsers(dest="action", required=True, metavar="ACTION")
    rebuild = psub.add_parser("rebuild", parents=[common], help="rebuild from sequence 1")
    rebuild.add_argument("--json", action="store_true", help="the reply as JSON, no progress")
    rebuild.set_defaults(run=cmd_rebuild)

    vault = sub.add_parser("vault", help="session vault maintenance")
    vsub = vault.add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = vsub.add_parser("rotate", parents=[common], help="re-encrypt with the newest key")
    rotate.add_argument("--json", action="store_true", help='{"rotated": N}, no progress')
    rotate.set_defaults(run=cmd_vault_rotate)

    sim = sub.add_parser("sim", help="simulator controls")
    ssub = sim.add_subparsers(dest="action", required=True, metavar="ACTION")
    scan = ssub.add_parser("scan", parents=[common], help="the phone scans a QR")
    target = scan.add_mutually_exclusive_group(required=True)
    target.add_argument("--tenant", type=tenant_arg)
    target.add_argument("--url")
    scan.add_argument("--user", type=int_in(1), required=True)
    secret = scan.add_mutually_exclusive_group()
    # No value on the command line (other users see it): ask, as `tgqr password` does.
    secret.add_argument(
        "--password",
        action="store_true",
        help="the account has 2FA: ask for its password (no echo, or one line of stdin)",
    )
    secret.add_argument("--password-file", metavar="FILE", help="read the 2FA password from FILE")
    scan.add_argument("--dc", type=int_in(1, 5))
    scan.set_defaults(run=cmd_sim_scan)
    add_sim_device_commands(ssub, common)
    add_sim_serve_command(ssub, common)

    tenant = sub.add_parser("tenant", help="tenant maintenance")
    tsub = tenant.add_subparsers(dest="action", required=True, metavar="ACTION")
    repair = tsub.add_parser(
        "repair", parents=[common], help="show a quarantined tenant's bad messages, release it"
    )
    repair.add_argument("tenant", type=tenant_arg)
    repair.add_argument("--yes", action="store_true", help="release without asking")
    repair.add_argument("--note", default="", help="why (kept in the QuarantineLifted event)")
    repair.set_defaults(run=cmd_tenant_repair)

    add_session_commands(sub, common, tenant_arg)
    add_page_command(sub, common)
    add_backup_commands(sub, common)
    add_cluster_command(sub, common)

    demo = sub.add_parser("demo", parents=[common], help="what `make demo` runs")
    demo.set_defaults(run=_cmd_demo)
    return parser


def _fail(message: str) -> NoReturn:
    print(f"tgqr: {message}", file=sys.stderr)
    raise SystemExit(EXIT_FAIL)


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Failures whose message is the whole story (one line, no type name).
_PLAIN = (CliError, ConfigError, NatsConnectError, NatsServerError, msgspec.ValidationError)


def _log_level(command: str) -> int:
    raw = os.environ.get("TGQR_LOG_LEVEL") or ("INFO" if command == "up" else "WARNING")
    level = logging.getLevelName(raw.strip().upper())
    if raw.strip().upper() not in _LEVELS or not isinstance(level, int):
        _fail(f"TGQR_LOG_LEVEL must be one of {', '.join(_LEVELS)} (it is {raw!r})")
    return level


def _root_cause(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (a task group's failure), else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _report(exc: BaseException) -> NoReturn:
    cause = _root_cause(exc)
    if isinstance(cause, KeyboardInterrupt):
        print("tgqr: interrupted", file=sys.stderr)
        raise SystemExit(130)
    if isinstance(cause, _PLAIN):
        _fail(str(cause))
    _fail(f"{type(cause).__name__}: {cause}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tgqr`` console script."""
    # Whatever tgqr or its children (nats-server, DuckDB) create is its user's only.
    os.umask(PRIVATE_UMASK)
    args = build_parser().parse_args(argv)
    try:
        formatter = log_formatter(os.environ)
    except LogFormatError as exc:
        _fail(str(exc))
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logging.basicConfig(level=_log_level(args.command), handlers=[handler])
    try:
        code: int = anyio.run(args.run, args)
    except (KeyboardInterrupt, BaseExceptionGroup, Exception) as exc:
        _report(exc)
    return code


if __name__ == "__main__":
    sys.exit(main())
