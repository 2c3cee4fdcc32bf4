"""``tgqr``: the command line. User mistakes print one line on stderr and exit non-zero.

Client commands talk to a running service over NATS (``--nats URL``, default: the embedded
server's URL that ``tgqr up`` wrote under the data directory); ``up`` and ``demo`` run it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import anyio
import msgspec
import nats
import nats.errors
from nats.aio.client import Client

from actors.service import ConfigError, ServiceConfig, load_chain_key
from events import (
    Authorized,
    ChainKey,
    Event,
    Expired,
    FloodWaited,
    InvalidTenantError,
    LoginCancelled,
    LoginFailed,
    PasswordRejected,
    PasswordRequired,
    QrIssued,
    Scanned,
    UndecodableEventError,
    decode_event,
    event_subject,
    validate_tenant,
)
from events.audit import audit_verify, format_record, replay
from events.jetstream import JetStreamEventLog

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data or os.environ.get("TGQR_DATA", "var"))


def _nats_url(args: argparse.Namespace) -> str:
    if args.nats:
        return str(args.nats)
    url_file = _data_dir(args) / "nats.url"
    try:
        return url_file.read_text().strip()
    except OSError:
        raise CliError(
            f"no running tgqr found ({url_file} is missing): start `tgqr up` or pass --nats URL"
        ) from None


async def _connect(args: argparse.Namespace) -> Client:
    url = _nats_url(args)
    try:
        return await nats.connect(
            servers=url.split(","),
            connect_timeout=3,
            max_reconnect_attempts=1,
            allow_reconnect=False,
        )
    except (OSError, nats.errors.Error) as exc:
        raise CliError(f"cannot reach NATS at {url}: {type(exc).__name__}") from None


async def _request(
    nc: Client, subject: str, body: dict[str, Any], wait_s: float = 30
) -> dict[str, Any]:
    try:
        msg = await nc.request(subject, json.dumps(body).encode(), timeout=wait_s)
    except nats.errors.NoRespondersError:
        raise CliError(f"no tgqr service answers on {subject}: is `tgqr up` running?") from None
    except nats.errors.TimeoutError:
        raise CliError(f"no answer on {subject} within {wait_s:.0f}s") from None
    reply: dict[str, Any] = json.loads(msg.data)
    if not reply.get("ok"):
        error = reply.get("error") or {}
        extra = f" (retry in {error['retry_after_s']}s)" if "retry_after_s" in error else ""
        raise CliError(f"{error.get('code', 'error')}: {error.get('message', '')}{extra}")
    return reply


def _tenant(value: str) -> str:
    try:
        return validate_tenant(value)
    except InvalidTenantError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _read_password(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    line = sys.stdin.readline()
    if not line:
        raise CliError("no password on standard input")
    return line.rstrip("\n")


# --- commands --------------------------------------------------------------------------


async def _cmd_simple(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    try:
        body: dict[str, Any] = {}
        if args.command == "password":
            body["password"] = _read_password(f"2FA password for {args.tenant}: ")
        reply = await _request(nc, f"tgqr.cmd.{args.tenant}.{args.command}", body)
        print(f"{args.tenant}: {reply.get('state')} (attempt {reply.get('attempt')})")
        return EXIT_OK
    finally:
        await nc.close()


def _draw_qr(event: QrIssued) -> None:
    import segno

    segno.make(event.url, error="l").terminal(out=sys.stdout, compact=True)
    left = (event.expires_at - datetime.now(event.expires_at.tzinfo)).total_seconds()
    print(
        f"{event.url}\nscan with Telegram: Settings > Devices > Link Desktop Device "
        f"(this code refreshes in ~{max(0, int(left))}s)",
        flush=True,
    )


async def _cmd_login(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    try:
        sub = await nc.subscribe(event_subject(args.tenant))
        body: dict[str, Any] = {"force": args.force}
        if args.expect_user is not None:
            body["expected_user_id"] = args.expect_user
        if args.ttl is not None:
            body["ttl_s"] = args.ttl
        reply = await _request(nc, f"tgqr.cmd.{args.tenant}.start", body)
        attempt, state = reply["attempt"], reply["state"]
        if state == "authorized":
            print(f"{args.tenant} is already authorized (use --force for a new login)")
            return EXIT_OK
        print(f"{args.tenant}: login attempt {attempt} ({state})", flush=True)
        seen: set[str] = set()
        backlog: list[Event] = []
        try:
            js = nc.jetstream()
            reader = JetStreamEventLog(js, ChainKey(b"read-only-client-needs-no-key!!!"))
            backlog = [r.event for r in await reader.read_tenant(args.tenant)]
        except (UndecodableEventError, nats.errors.Error):
            backlog = []
        for event in backlog:
            if event.attempt == attempt:
                seen.add(event.id)
        current = [e for e in backlog if e.attempt == attempt]
        last_qr = next((e for e in reversed(current) if isinstance(e, QrIssued)), None)
        if last_qr is not None and not any(isinstance(e, Scanned) for e in current):
            _draw_qr(last_qr)
        # Only the latest event matters for an attempt that was already under way.
        if current and (code := await _follow(nc, args, current[-1], replay_only=True)) is not None:
            return code
        async for msg in sub.messages:
            try:
                event = decode_event(msg.data)
            except UndecodableEventError:
                continue
            if event.attempt != attempt or event.id in seen:
                continue
            seen.add(event.id)
            if (code := await _follow(nc, args, event, replay_only=False)) is not None:
                return code
        return EXIT_FAIL
    finally:
        await nc.close()


async def _follow(
    nc: Client, args: argparse.Namespace, event: Event, *, replay_only: bool
) -> int | None:
    """React to one event of the attempt; an exit code ends the login."""
    match event:
        case QrIssued() if not replay_only:
            _draw_qr(event)
        case Scanned():
            print("scanned: confirming...", flush=True)
        case FloodWaited(seconds=seconds, retry_at=retry_at):
            print(f"Telegram asked to wait {seconds}s" + ("" if retry_at else ": giving up"))
        case PasswordRequired() | PasswordRejected():
            if isinstance(event, PasswordRejected):
                print(f"wrong password, {event.tries_left} tries left")
            hint = (
                f" (hint: {event.hint})"
                if isinstance(event, PasswordRequired) and event.hint
                else ""
            )
            password = await anyio.to_thread.run_sync(_read_password, f"2FA password{hint}: ")
            try:
                await _request(nc, f"tgqr.cmd.{args.tenant}.password", {"password": password})
            except CliError as exc:
                print(f"password not taken: {exc}", file=sys.stderr)
        case Authorized(user_id=user_id, dc_id=dc_id):
            print(f"authorized as user {user_id} on DC {dc_id}")
            return EXIT_OK
        case Expired():
            print("the login expired before it was confirmed", file=sys.stderr)
            return EXIT_FAIL
        case LoginFailed(reason=reason):
            print(f"login failed: {reason}", file=sys.stderr)
            return EXIT_FAIL
        case LoginCancelled():
            print("login cancelled", file=sys.stderr)
            return EXIT_FAIL
        case _:
            pass
    return None


async def _cmd_status(args: argparse.Namespace) -> int:
    from projections import render_status

    nc = await _connect(args)
    try:
        body = {"tenant": args.tenant} if args.tenant else {}
        reply = await _request(nc, "tgqr.query.status", body)
        print(json.dumps(reply, indent=2) if args.json else render_status(reply["items"]))
        return EXIT_OK
    finally:
        await nc.close()


async def _cmd_metrics(args: argparse.Namespace) -> int:
    from projections import render_metrics

    nc = await _connect(args)
    try:
        body: dict[str, Any] = {}
        if args.window is not None:
            body["window_s"] = args.window
        reply = await _request(nc, "tgqr.query.metrics", body)
        print(json.dumps(reply, indent=2) if args.json else render_metrics(reply))
        return EXIT_OK
    finally:
        await nc.close()


async def _cmd_audit(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    try:
        js = nc.jetstream()
        key = (
            load_chain_key(_data_dir(args))
            if args.verify
            else ChainKey(b"audit-without-verify-key-000000!")
        )
        log = JetStreamEventLog(js, key)
        types = args.type or None
        async for item in replay(
            log, tenant=args.tenant, since=args.since, until=args.until, types=types
        ):
            print(format_record(item, json=args.json))
        if not args.verify:
            return EXIT_OK
        report = await audit_verify(log, key, tenant=args.tenant)
        if report.ok:
            print(f"verified: {report.checked} events, {report.tenants} chains, no breaks")
            return EXIT_OK
        print(f"chain broken at {report.first_break}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        await nc.close()


async def _cmd_rebuild(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    try:
        reply = await _request(nc, "tgqr.query.rebuild", {}, wait_s=600)
        print(f"rebuilt: {reply.get('events')} events in {reply.get('seconds')}s")
        return EXIT_OK
    finally:
        await nc.close()


async def _cmd_vault_rotate(args: argparse.Namespace) -> int:
    from actors.vault import KvSessionVault, load_key_ring

    nc = await _connect(args)
    try:
        vault = await KvSessionVault.open(nc.jetstream(), load_key_ring(_data_dir(args)))
        print(f"re-encrypted {await vault.rotate()} sessions with the newest key")
        return EXIT_OK
    finally:
        await nc.close()


async def _cmd_sim_scan(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    try:
        body: dict[str, Any] = {"user_id": args.user}
        for name in ("tenant", "url", "password"):
            if getattr(args, name):
                body[name] = getattr(args, name)
        if args.dc is not None:
            body["dc_id"] = args.dc
        await _request(nc, "tgqr.sim.scan", body)
        print(f"user {args.user} scanned {args.tenant or args.url}")
        return EXIT_OK
    finally:
        await nc.close()


async def _cmd_up(args: argparse.Namespace) -> int:
    from actors.service import run_service, tune_gc

    tune_gc()
    config = ServiceConfig.from_env(
        data_dir=_data_dir(args), nats=args.nats, replicas=args.replicas
    )
    async with anyio.create_task_group() as tg:
        running = await tg.start(run_service, config)
        mode = "simulator" if running.sim else "Telegram"
        print(
            f"tgqr up: NATS {running.nats_url}, {mode}, data in {config.data_dir} (Ctrl-C stops)",
            flush=True,
        )
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                print(f"stopping ({signal.Signals(signum).name})...", flush=True)
                break
        # Every part bounds its own clean-up (shielded, a few seconds at most).
        tg.cancel_scope.cancel()
    print("stopped", flush=True)
    return EXIT_OK


async def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    code: int = await run_demo(_data_dir(args) / "demo")
    return code


# --- parser ------------------------------------------------------------------------------


def _time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.astimezone()


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--nats", help="NATS URL[,URL...] (default: the embedded server of `tgqr up`)"
    )
    common.add_argument("--data", help="data directory (default: $TGQR_DATA or var)")
    parser = argparse.ArgumentParser(
        prog="tgqr", description="Telegram QR logins for many tenants."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", parents=[common], help="serve until SIGINT/SIGTERM")
    up.add_argument("--replicas", type=int, default=1, help="stream and bucket replicas")
    up.set_defaults(run=_cmd_up)

    login = sub.add_parser("login", parents=[common], help="log a tenant in by QR")
    login.add_argument("tenant", type=_tenant)
    login.add_argument("--expect-user", type=int, help="only this Telegram user id may log in")
    login.add_argument("--ttl", type=int, help="seconds the attempt may take (1..600)")
    login.add_argument("--force", action="store_true", help="replace an active or authorized login")
    login.set_defaults(run=_cmd_login)

    for verb, text in (
        ("password", "send the 2FA password (no echo, or stdin)"),
        ("cancel", "cancel a pending login"),
        ("logout", "log the authorized session out"),
    ):
        p = sub.add_parser(verb, parents=[common], help=text)
        p.add_argument("tenant", type=_tenant)
        p.set_defaults(run=_cmd_simple)

    status = sub.add_parser("status", parents=[common], help="status projection")
    status.add_argument("tenant", nargs="?", type=_tenant)
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=_cmd_status)

    metrics = sub.add_parser("metrics", parents=[common], help="metrics projection")
    metrics.add_argument("--window", type=int, help="window in seconds")
    metrics.add_argument("--json", action="store_true")
    metrics.set_defaults(run=_cmd_metrics)

    audit = sub.add_parser("audit", parents=[common], help="replay the event log from JetStream")
    audit.add_argument("tenant", nargs="?", type=_tenant)
    audit.add_argument("--since", type=_time)
    audit.add_argument("--until", type=_time)
    audit.add_argument("--type", action="append", help="event type (repeatable)")
    audit.add_argument(
        "--verify", action="store_true", help="check the hash chains; exit 1 on a break"
    )
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(run=_cmd_audit)

    projections = sub.add_parser("projections", help="projection maintenance")
    psub = projections.add_subparsers(dest="action", required=True, metavar="ACTION")
    rebuild = psub.add_parser("rebuild", parents=[common], help="rebuild from sequence 1")
    rebuild.set_defaults(run=_cmd_rebuild)

    vault = sub.add_parser("vault", help="session vault maintenance")
    vsub = vault.add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = vsub.add_parser("rotate", parents=[common], help="re-encrypt with the newest key")
    rotate.set_defaults(run=_cmd_vault_rotate)

    sim = sub.add_parser("sim", help="simulator controls")
    ssub = sim.add_subparsers(dest="action", required=True, metavar="ACTION")
    scan = ssub.add_parser("scan", parents=[common], help="the phone scans a QR")
    target = scan.add_mutually_exclusive_group(required=True)
    target.add_argument("--tenant", type=_tenant)
    target.add_argument("--url")
    scan.add_argument("--user", type=int, required=True)
    scan.add_argument("--password")
    scan.add_argument("--dc", type=int)
    scan.set_defaults(run=_cmd_sim_scan)

    demo = sub.add_parser("demo", parents=[common], help="what `make demo` runs")
    demo.set_defaults(run=_cmd_demo)
    return parser


def _fail(message: str) -> NoReturn:
    print(f"tgqr: {message}", file=sys.stderr)
    raise SystemExit(EXIT_FAIL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tgqr`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("TGQR_LOG_LEVEL", "WARNING" if args.command != "up" else "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = anyio.run(args.run, args)
    except KeyboardInterrupt:
        return 130
    except (CliError, ConfigError, msgspec.ValidationError) as exc:
        _fail(str(exc))
    except Exception as exc:
        _fail(f"{type(exc).__name__}: {exc}")
    return code


if __name__ == "__main__":
    sys.exit(main())
