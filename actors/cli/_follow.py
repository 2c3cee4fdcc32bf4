"""Following one login attempt to its end: QR codes, "scanned", the 2FA prompt, the outcome.

The 2FA prompt runs in a task of its own, so the attempt's events keep arriving while it waits:
when the login ends elsewhere (the page, ``tgqr password``, a cancel, the deadline) the prompt
is cancelled and one line says how it ended. A wrong password typed here says so, with the
tries left, and asks again.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from nats.aio.client import Client

from events import (
    Authorized,
    Event,
    Expired,
    FloodWaited,
    LoginCancelled,
    LoginFailed,
    LoginStarted,
    PasswordRejected,
    PasswordRequired,
    QrIssued,
    Scanned,
)

from ._connection import EXIT_FAIL, EXIT_OK, CliError, ServiceError, request
from ._prompt import read_password

__all__ = ["VERDICT_WAIT_S", "follow_attempt", "rejection_text"]

VERDICT_WAIT_S: Final = 5.0
"""How long a rejected password waits for its ``PasswordRejected`` (for the tries left)."""
_GRACE_S: Final = 15.0
"""How long past the attempt's deadline the service has to say how it ended."""
_ELSEWHERE: Final = " (it ended elsewhere while the 2FA prompt waited: the prompt is closed)"


def _draw_qr(event: QrIssued) -> None:
    import segno

    segno.make(event.url, error="l").terminal(out=sys.stdout, compact=True)
    left = (event.expires_at - datetime.now(event.expires_at.tzinfo)).total_seconds()
    print(
        f"{event.url}\nscan with Telegram: Settings > Devices > Link Desktop Device "
        f"(this code refreshes in ~{max(0, int(left))}s)",
        flush=True,
    )


def rejection_text(rejected: PasswordRejected | None) -> str:
    """ "wrong password" and the tries left, when known."""
    if rejected is None:
        return "wrong password"
    if rejected.tries_left <= 0:
        return "wrong password, no tries left"
    return f"wrong password, {rejected.tries_left} tries left"


def _outcome(event: Event) -> tuple[int, str] | None:
    """The exit code and the line of an event that ends the attempt; None for the others."""
    match event:
        case Authorized(user_id=user_id, dc_id=dc_id):
            return EXIT_OK, f"authorized as user {user_id} on DC {dc_id}"
        case Expired():
            return EXIT_FAIL, "the login expired before it was confirmed"
        case LoginFailed(reason=reason):
            return EXIT_FAIL, f"login failed: {reason}"
        case LoginCancelled():
            return EXIT_FAIL, "login cancelled"
    return None


@dataclass
class _Prompt:
    """The 2FA conversation in progress: ``asking`` while it waits for the user."""

    scope: anyio.CancelScope
    asking: bool = True
    done: anyio.Event = field(default_factory=anyio.Event)


@dataclass
class _Follower:
    nc: Client
    tenant: str
    attempt: int
    tg: anyio.abc.TaskGroup
    verdicts: tuple[
        MemoryObjectSendStream[PasswordRejected], MemoryObjectReceiveStream[PasswordRejected]
    ]
    prompt: _Prompt | None = None
    watch: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    async def on(self, event: Event, *, replay: bool) -> int | None:
        """React to one event of the attempt; an exit code ends the login."""
        match event:
            case LoginStarted(deadline=deadline):
                left = (deadline - datetime.now(UTC)).total_seconds()
                self.watch.deadline = anyio.current_time() + max(0.0, left) + _GRACE_S
            case QrIssued() if not replay:
                _draw_qr(event)
            case Scanned():
                print("scanned: confirming...", flush=True)
            case FloodWaited(seconds=seconds, retry_at=retry_at):
                print(f"Telegram asked to wait {seconds}s" + ("" if retry_at else ": giving up"))
            case PasswordRequired(hint=hint) if self.prompt is None:
                await self.tg.start(self._converse, f" (hint: {hint})" if hint else "")
            case PasswordRejected():
                await self._rejected(event)
        if (outcome := _outcome(event)) is None:
            return None
        code, line = outcome
        elsewhere = self.prompt is not None and self.prompt.asking
        await self.close_prompt()
        print(
            line + (_ELSEWHERE if elsewhere else ""), file=sys.stdout if code == 0 else sys.stderr
        )
        return code

    async def _rejected(self, event: PasswordRejected) -> None:
        if self.prompt is not None and not self.prompt.asking:
            self.verdicts[0].send_nowait(event)  # the verdict on the password sent here
        elif self.prompt is not None:
            print(f"\n{rejection_text(event)} (a password sent elsewhere)", file=sys.stderr)
        else:
            print(rejection_text(event), flush=True)
            if event.tries_left > 0:
                await self.tg.start(self._converse, "")

    async def close_prompt(self) -> None:
        if (prompt := self.prompt) is not None:
            prompt.scope.cancel()
            await prompt.done.wait()  # its terminal is restored before the outcome prints

    async def _converse(self, hint: str, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Ask for the password and send it, until it is taken (or the login ended)."""
        with anyio.CancelScope() as scope:
            prompt = self.prompt = _Prompt(scope)
            task_status.started()
            try:
                while await self._try_once(prompt, hint):
                    pass
            finally:
                self.prompt = None
                prompt.done.set()

    async def _try_once(self, prompt: _Prompt, hint: str) -> bool:
        """One password asked and sent; whether to ask again."""
        prompt.asking = True
        password = await read_password(f"2FA password{hint}: ")
        prompt.asking = False
        while True:  # a verdict on someone else's password is not this one's
            try:
                self.verdicts[1].receive_nowait()
            except anyio.WouldBlock:
                break
        try:
            reply = await request(
                self.nc, f"tgqr.cmd.{self.tenant}.password", {"password": password}
            )
        except ServiceError as exc:
            if exc.code == "wrong_state":
                return False  # no password expected any more: the events say why
            print(f"password not taken: {exc}; try again", file=sys.stderr)
            return True
        if reply.get("state") != "password_required":
            return False  # taken, or the last try failed: the events say how it ended
        rejected = None
        with anyio.move_on_after(VERDICT_WAIT_S):
            rejected = await self.verdicts[1].receive()
        print(rejection_text(rejected), flush=True)
        return True


async def follow_attempt(
    nc: Client,
    tenant: str,
    attempt: int,
    backlog: Sequence[Event],
    live: AsyncIterator[Event],
) -> int:
    """Follow ``attempt`` from its stored events ``backlog`` and then ``live`` ones until it
    ends; the exit code. Blocks; asks for the 2FA password when the attempt needs it.

    Raises:
        CliError: the connection closed first, a later attempt replaced this one, or the
            service said nothing past the attempt's deadline.
    """
    seen = {e.id for e in backlog}
    current = [e for e in backlog if e.attempt == attempt]
    last_qr = next((e for e in reversed(current) if isinstance(e, QrIssued)), None)
    if last_qr is not None and not any(isinstance(e, Scanned) for e in current):
        _draw_qr(last_qr)
    send, receive = anyio.create_memory_object_stream[PasswordRejected](16)
    failure: CliError | None = None
    with send, receive:
        async with anyio.create_task_group() as tg:
            follower = _Follower(nc, tenant, attempt, tg, (send, receive))
            try:
                code = await _run(follower, current, live, seen)
            except CliError as exc:  # raised below: not wrapped in the task group's group
                failure = exc
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return code


async def _run(
    follower: _Follower, current: Sequence[Event], live: AsyncIterator[Event], seen: set[str]
) -> int:
    tenant, attempt = follower.tenant, follower.attempt
    with follower.watch:
        for event in current:
            if isinstance(event, LoginStarted):
                await follower.on(event, replay=True)
        # Only the latest event matters for an attempt that was already under way.
        if current and (code := await follower.on(current[-1], replay=True)) is not None:
            return code
        async for event in live:
            if event.id in seen:
                continue
            seen.add(event.id)
            if event.attempt > attempt:
                await follower.close_prompt()
                raise CliError(
                    f"{tenant}: a new login attempt ({event.attempt}) replaced {attempt}"
                )
            if event.attempt != attempt:
                continue
            if (code := await follower.on(event, replay=False)) is not None:
                return code
        await follower.close_prompt()
        raise CliError(
            f"the connection to NATS closed before the login of {tenant} ended "
            "(did `tgqr up` stop?)"
        )
    await follower.close_prompt()
    raise CliError(
        f"no word from tgqr on {tenant} since the login's deadline: is `tgqr up` running?"
    )
