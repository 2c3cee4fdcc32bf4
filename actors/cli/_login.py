"""The commands about one tenant's login: ``login`` (which follows the attempt to its end),
``password``, ``cancel`` and ``logout``."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

import anyio
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from events import (
    Event,
    LoginFailed,
    PasswordRejected,
    UndecodableEventError,
    decode_event,
    event_subject,
)
from events.jetstream import STREAM

from ._connection import EXIT_OK, CliError, connected, request
from ._follow import VERDICT_WAIT_S, follow_attempt, rejection_text
from ._prompt import read_password, read_password_sync

__all__ = ["cmd_login", "cmd_simple"]

# `sim scan` (in ._admin) asks synchronously; Ctrl-C-safe as well.
_read_password = read_password_sync
_E = TypeVar("_E", bound=Event)


async def _events(nc: Client, tenant: str) -> JetStreamContext.PushSubscription:
    """The log's new events of ``tenant`` from now on (from the clients' mirror under auth):
    an ordered consumer, since the log's subjects carry no live traffic in the clients'
    account. Blocks on NATS (5 s at most).

    Raises:
        CliError: there is no event log on this NATS.
        nats.errors.TimeoutError: NATS did not answer (or refused: see ``connected``).
    """
    try:
        return await nc.jetstream(timeout=5).subscribe(
            event_subject(tenant),
            stream=STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
    except nats.js.errors.NotFoundError:
        raise CliError(
            f"no event log ({STREAM}) on this NATS: has `tgqr up` run against it?"
        ) from None


async def _decoded(sub: JetStreamContext.PushSubscription) -> AsyncGenerator[Event]:
    """The events of ``sub`` (undecodable ones skipped) until the connection closes."""
    async for msg in sub.messages:
        with contextlib.suppress(UndecodableEventError):
            yield decode_event(msg.data)


async def _first(
    events: AsyncIterator[Event], attempt: int, kind: type[_E], within_s: float
) -> _E | None:
    """The first event of type ``kind`` in ``attempt``, waiting at most ``within_s``."""
    with anyio.move_on_after(within_s):
        async for event in events:
            if isinstance(event, kind) and event.attempt == attempt:
                return event
    return None


async def cmd_simple(args: argparse.Namespace) -> int:
    """``password``, ``cancel`` or ``logout``: one command, one line of reply.

    A password that is not taken is a failure (exit 1): wrong (with the tries left), or the
    last try (the login failed).
    """
    async with connected(args) as nc:
        if args.command != "password":
            reply = await request(nc, f"tgqr.cmd.{args.tenant}.{args.command}", {})
            print(f"{args.tenant}: {reply.get('state')} (attempt {reply.get('attempt')})")
            return EXIT_OK
        password = await read_password(f"2FA password for {args.tenant}: ")
        # Before sending: the rejection's event tells the tries left.
        sub = await _events(nc, args.tenant)
        reply = await request(nc, f"tgqr.cmd.{args.tenant}.password", {"password": password})
        state, attempt = reply.get("state"), int(reply.get("attempt") or 0)
        if state == "password_required":
            async with contextlib.aclosing(_decoded(sub)) as events:
                rejected = await _first(events, attempt, PasswordRejected, VERDICT_WAIT_S)
            raise CliError(f"{args.tenant}: {rejection_text(rejected)} (attempt {attempt})")
        if state == "failed":
            async with contextlib.aclosing(_decoded(sub)) as events:
                failed = await _first(events, attempt, LoginFailed, VERDICT_WAIT_S)
            why = (
                "wrong password, no tries left"
                if failed is None or failed.reason == "password_attempts"
                else failed.reason
            )
            raise CliError(f"{args.tenant}: login failed: {why} (attempt {attempt})")
        print(f"{args.tenant}: {state} (attempt {attempt})")
        return EXIT_OK


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
    """``login``: start an attempt, then draw its QR codes and follow it until it ends (see
    :func:`follow_attempt`)."""
    async with connected(args) as nc:
        sub = await _events(nc, args.tenant)
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
        try:
            backlog = await _backlog(nc, args.tenant)
        except nats.errors.Error:
            backlog = []
        async with contextlib.aclosing(_decoded(sub)) as live:
            return await follow_attempt(nc, args.tenant, attempt, backlog, live)
