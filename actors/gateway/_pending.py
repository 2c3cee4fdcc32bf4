"""What the command and session endpoints share: a request between its arrival and its reply.

A :class:`Pending` request is submitted to its tenant's mailbox as an ``Envelope`` and waits
(:func:`wait_answer`) for the one answer; :class:`RecentIds` keeps the requests of the dedupe
window in this process, so a repeated ``Nats-Msg-Id`` shares the first request's reply.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import msgspec
from nats.micro.request import Request

from actors.login import Command, CommandReply, Envelope, Mail
from actors.supervision import MailboxFullError, StoppedError, TenantSupervisor
from actors.telemetry import CommandSpan, Telemetry

from ._parse import error_reply
from ._reply import allowed_reply

__all__ = ["Pending", "RecentIds", "rate_limited", "respond", "submit", "wait_answer"]

log = logging.getLogger("tgqr.commands")

_encoder: Final = msgspec.json.Encoder()
_NOT_RUN: Final = frozenset({"unavailable", "rate_limited"})


@dataclass(slots=True)
class Pending:
    """One request between its arrival and its reply (shared by local repeats).

    ``ok_json`` shapes an ok reply (default: the command reply of docs/contract.md,
    "Commands").
    """

    tenant: str
    verb: str
    ok_json: Callable[[CommandReply], Mapping[str, Any]] | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    reply: bytes = b""
    ran: bool = False  # answered by the actor, so a durable repeat must get this reply
    envelope: Envelope | None = None
    span: CommandSpan | None = None
    """The command's span: it ends with the answer (the actor answers once its events are
    stored), so it covers the command's whole work."""

    def answer(self, reply: CommandReply) -> None:
        if self.done.is_set():
            return
        body = self.ok_json(reply) if reply.ok and self.ok_json else reply.to_json()
        self.reply = _encoder.encode(body)
        self.ran = reply.ok or reply.error_code not in _NOT_RUN
        self.done.set()
        if self.span is not None:
            self.span.end(None if reply.ok else reply.error_code)

    def answer_raw(self, reply: bytes, *, ran: bool = False) -> None:
        """Answer with ``reply`` as is; ``ran``: it is the reply of a command that ran (a
        repeat must get it), not a refusal."""
        if not self.done.is_set():
            self.reply = reply
            self.ran = ran
            self.done.set()
            if self.span is not None:
                self.span.end()

    def settle(self, message: str) -> None:
        """No answer in time: ``unavailable`` now, unless the actor is already running it."""
        if self.envelope is not None:
            self.envelope.expire(self.tenant, message)
        else:
            self.answer(CommandReply.error(self.tenant, "unavailable", message))


class RecentIds:
    """``(subject, Nats-Msg-Id)`` -> its request, for ``window_s`` (at most ``most`` kept)."""

    def __init__(self, window_s: float, most: int) -> None:
        self._window_s = window_s
        self._most = most
        self._seen: OrderedDict[tuple[str, str], tuple[float, Pending]] = OrderedDict()

    def get(self, key: tuple[str, str], now: float) -> Pending | None:
        while self._seen:  # drop what left the window (oldest first)
            oldest, (expiry, _) = next(iter(self._seen.items()))
            if expiry > now:
                break
            del self._seen[oldest]
        seen = self._seen.get(key)
        return None if seen is None else seen[1]

    def put(self, key: tuple[str, str], pending: Pending, now: float) -> None:
        self._seen[key] = (now + self._window_s, pending)
        while len(self._seen) > self._most:
            self._seen.popitem(last=False)

    def forget(self, key: tuple[str, str], pending: Pending) -> None:
        """Drop ``key`` if it still names ``pending`` (a retry may then run it)."""
        seen = self._seen.get(key)
        if seen is not None and seen[1] is pending:
            del self._seen[key]


def rate_limited(
    tenant: str, verb: str, retry_after: float, telemetry: Telemetry | None, noun: str
) -> bytes:
    """The ``rate_limited`` reply (and its metric)."""
    if telemetry is not None:
        telemetry.rate_limit_hit(tenant, verb)
    return error_reply(
        "rate_limited",
        f"too many {verb} {noun} for {tenant}; retry in {retry_after:.1f}s",
        retry_after_s=round(retry_after, 3),
    )


def submit(
    supervisor: TenantSupervisor[Mail],
    pending: Pending,
    command: Command,
    headers: Mapping[str, str],
    telemetry: Telemetry | None,
) -> None:
    """Hand ``command`` to its tenant's mailbox with a span that ends with its answer; a full
    or stopped supervisor answers ``unavailable`` at once. Synchronous: the order of calls
    is the actor's."""
    if telemetry is not None:
        pending.span = telemetry.start_command(pending.tenant, pending.verb, headers)
    trace = pending.span.traceparent if pending.span is not None else None
    pending.envelope = Envelope(command, pending.answer, trace)
    try:
        supervisor.submit(pending.tenant, pending.envelope)
    except (MailboxFullError, StoppedError) as exc:
        pending.envelope = None
        pending.answer(CommandReply.error(pending.tenant, "unavailable", str(exc)))


async def wait_answer(pending: Pending, timeout_s: float) -> None:
    """Wait for the answer. If none comes within ``timeout_s`` an unclaimed request is
    answered ``unavailable`` (it then never runs); a claimed one is answered on every path,
    so wait for that, up to twice as long again."""
    with anyio.move_on_after(timeout_s):
        await pending.done.wait()
    if pending.done.is_set():
        return
    log.warning("tenant=%s %s: no answer in time", pending.tenant, pending.verb)
    pending.settle(f"no answer for {pending.verb} in time; it was not run")
    with anyio.move_on_after(timeout_s * 2):
        await pending.done.wait()
    if not pending.done.is_set():
        pending.answer(
            CommandReply.error(
                pending.tenant, "unavailable", f"{pending.verb} still running; see the events"
            )
        )


async def respond(request: Request, reply: bytes) -> None:
    """Send ``reply`` (``unavailable`` if empty); a requester that left is only logged.

    The one place the endpoints publish a reply: only to an inbox (:func:`._reply.allowed_reply`;
    admission already dropped the rest, this is the last check).
    """
    if not allowed_reply(request._msg.reply):
        return
    try:
        await request.respond(reply or error_reply("unavailable", "no answer"))
    except Exception as exc:
        log.info("could not send a reply: %s", type(exc).__name__)
