"""The commands about one tenant's login: ``login`` (which follows the attempt to its end),
``password``, ``cancel`` and ``logout``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import datetime
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from events import (
    Authorized,
    Event,
    Expired,
    FloodWaited,
    LoginCancelled,
    LoginFailed,
    PasswordRejected,
    PasswordRequired,
    QrIssued,
    Scanned,
    UndecodableEventError,
    decode_event,
    event_subject,
)
from events.jetstream import STREAM

from ._connection import EXIT_FAIL, EXIT_OK, CliError, connected, request
from ._prompt import read_password, read_password_sync

__all__ = ["cmd_login", "cmd_simple"]

# `sim scan` (in ._admin) asks synchronously; Ctrl-C-safe as well.
_read_password = read_password_sync


async def cmd_simple(args: argparse.Namespace) -> int:
    """``password``, ``cancel`` or ``logout``: one command, one line of reply."""
    async with connected(args) as nc:
        body: dict[str, Any] = {}
        if args.command == "password":
            body["password"] = await read_password(f"2FA password for {args.tenant}: ")
        reply = await request(nc, f"tgqr.cmd.{args.tenant}.{args.command}", body)
        print(f"{args.tenant}: {reply.get('state')} (attempt {reply.get('attempt')})")
        return EXIT_OK


def _draw_qr(event: QrIssued) -> None:
    import segno

    segno.make(event.url, error="l").terminal(out=sys.stdout, compact=True)
    left = (event.expires_at - datetime.now(event.expires_at.tzinfo)).total_seconds()
    print(
        f"{event.url}\nscan with Telegram: Settings > Devices > Link Desktop Device "
        f"(this code refreshes in ~{max(0, int(left))}s)",
        flush=True,
    )


async def _backlog(nc: Client, tenant: str) -> list[Event]:
    """The tenant's stored events, for display only: decoded, not verified (a client of role
    app holds no chain key; the service verifies whatever it acts on). Blocks on NATS.

    Raises:
        nats.errors.Error: the stream could not be read.
    """
    js = nc.jetstream(timeout=5)
    events: list[Event] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(STREAM, seq=seq, subject=event_subject(tenant), next=True)
        except nats.js.errors.NotFoundError:
            return events
        with contextlib.suppress(UndecodableEventError):
            events.append(decode_event(msg.data or b""))
        seq = (msg.seq or 0) + 1


async def cmd_login(args: argparse.Namespace) -> int:
    """``login``: start an attempt, then draw its QR codes and follow it until it ends."""
    async with connected(args) as nc:
        # The log's new events (from the clients' mirror under auth): an ordered consumer,
        # since the log's subjects carry no live traffic in the clients' account.
        sub = await nc.jetstream(timeout=5).subscribe(
            event_subject(args.tenant),
            stream=STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        body: dict[str, Any] = {"force": args.force}
        if args.expect_user is not None:
            body["expected_user_id"] = args.expect_user
        if args.ttl is not None:
            body["ttl_s"] = args.ttl
        reply = await request(nc, f"tgqr.cmd.{args.tenant}.start", body)
        attempt, state = reply["attempt"], reply["state"]
        if state == "authorized":
            print(f"{args.tenant} is already authorized (use --force for a new login)")
            return EXIT_OK
        print(f"{args.tenant}: login attempt {attempt} ({state})", flush=True)
        seen: set[str] = set()
        try:
            backlog = await _backlog(nc, args.tenant)
        except nats.errors.Error:
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
            password = await read_password(f"2FA password{hint}: ")
            try:
                await request(nc, f"tgqr.cmd.{args.tenant}.password", {"password": password})
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
