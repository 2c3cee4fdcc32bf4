"""The live attempt of a login actor: one Telegram client, a scan watcher and the QR loop.

An attempt runs as a task of its actor's task group for as long as one attempt is live. It
owns the attempt's Telegram client; the scan watcher and a timer live in a task group nested
inside the client's ``async with``, so neither can outlive the client. It never changes the
tenant's state: it sends what it observes (a token, a scan, a flood wait, a success...) into
its actor's mailbox and waits for the state the loop sends back, then decides what to ask
Telegram next. Its own inbox brings ``password`` commands (from the loop), scans (from its
watcher) and timer ticks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from actors.telegram import (
    BreakerOpenError,
    FloodWaitError,
    PasswordInvalidError,
    ProxyAuthError,
    ProxyUnreachableError,
    TelegramClientPort,
    TelegramError,
    TelegramUnavailableError,
)
from actors.vault import session_fingerprint

from ._deps import ActorDeps, open_client
from ._inbox import Attempt, Item, Scan, Tick
from ._inputs import (
    DeadlineReached,
    FloodWait,
    Observation,
    Password,
    PasswordWrong,
    ScanSeen,
    SessionLost,
    Succeeded,
)
from ._mail import AttemptEnded, Envelope, Mail, Observed
from ._results import GaveUpError, follow_result, observation_of
from ._state import LoginState, refresh_at, wakeup_at

__all__ = ["Attempt", "run_attempt"]

_log = logging.getLogger("tgqr.actor")
_T = TypeVar("_T")


async def run_attempt(
    handle: Attempt, state: LoginState, deps: ActorDeps, outbox: MemoryObjectSendStream[Mail]
) -> None:
    """Drive attempt ``handle.number`` from ``state`` until it ends or is stopped.

    Sends ``AttemptEnded`` when it ends by itself. Raises what the vault or a bug raises.
    """
    driver = _Driver(handle, state, deps, outbox)
    code, message = "unavailable", "the login was interrupted; retry"
    try:
        with handle.scope:
            await driver.run()
            code, message = "wrong_state", "the attempt has ended"
    finally:
        handle.close(code, message)
        handle.done.set()
    if not handle.scope.cancel_called:
        await outbox.send(AttemptEnded(handle))


class _Driver:
    """The attempt task's own state: the latest copy of the tenant's state and its timers."""

    __slots__ = (
        "_deps",
        "_handle",
        "_kept",
        "_outbox",
        "_state",
        "_tg",
        "_timer",
        "_version",
        "_waits",
    )

    def __init__(
        self,
        handle: Attempt,
        state: LoginState,
        deps: ActorDeps,
        outbox: MemoryObjectSendStream[Mail],
    ) -> None:
        self._handle = handle
        self._state = state
        self._version = -1
        self._deps = deps
        self._outbox = outbox
        self._tg: TaskGroup | None = None
        self._timer = anyio.CancelScope()
        self._waits = 0
        self._kept: TelegramClientPort | None = None  # the client whose key the vault holds

    def _live(self) -> bool:
        return self._state.attempt == self._handle.number and self._state.live

    async def report(
        self,
        observation: Observation,
        *,
        answer: Envelope | None = None,
        trace: str | None = None,
        session: str | None = None,
    ) -> LoginState:
        """Send ``observation`` to the loop; the state after it (the newest state seen)."""
        observed = Observed(self._handle, observation, answer, trace, session)
        await self._outbox.send(observed)
        state, version = await observed.result()
        if version >= self._version:
            self._state, self._version = state, version
        return self._state

    async def run(self) -> None:
        deps, tenant = self._deps, self._handle.tenant
        session = None
        if self._state.status == "password_required":
            entry = await deps.vault.get(tenant)
            if entry is None or entry.stage != "pre_auth":
                await self.report(SessionLost())
                return
            session = entry.session
        elif self._state.qr_url is not None:
            # A QR of this attempt was shown: reconnect with the key that exported it, so a
            # scan that landed while no actor held it (a crash, a hand-over) still logs in.
            entry = await deps.vault.get(tenant)
            if entry is not None and entry.stage == "pre_auth":
                session = entry.session
        device = self._state.device
        while True:
            try:
                async with (
                    open_client(deps, tenant, session, device=device) as client,
                    anyio.create_task_group() as tg,
                ):
                    self._tg = tg
                    tg.start_soon(self._watch, client)
                    failure = await self._drive_until_over(client)
                    tg.cancel_scope.cancel()
            except (ProxyAuthError, ProxyUnreachableError) as exc:  # on connecting: a clear end
                _log.info("proxy refused tenant=%s: %s", tenant, type(exc).__name__)
                failure = observation_of(exc)
            except BreakerOpenError as exc:  # nothing dialled: wait, within the deadline
                if await self._wait_out(exc):
                    continue
                failure = observation_of(exc)
            break
        if failure is not None:  # reported once the client is closed
            await self.report(failure)

    async def _wait_out(self, down: BreakerOpenError) -> bool:
        """Sleep out an open breaker if the attempt's deadline leaves time for it afterwards
        (rather than dial a DC that keeps failing); whether to try again."""
        deadline, now = self._state.deadline, self._deps.clock()
        if deadline is None or (deadline - now).total_seconds() <= down.retry_after_s:
            return False
        _log.info(
            "tenant=%s attempt=%d waits %.1f s: Telegram DC %d is down",
            self._handle.tenant,
            self._handle.number,
            down.retry_after_s,
            down.dc,
        )
        await self._deps.sleep(down.retry_after_s)
        return self._live()

    async def _drive_until_over(self, client: TelegramClientPort) -> Observation | None:
        """Drive the attempt; a Telegram error that ends it, as an observation to report."""
        try:
            await self._drive(client)
        except GaveUpError:
            pass
        except TelegramError as exc:
            _log.info(
                "telegram error %s tenant=%s attempt=%d",
                type(exc).__name__,
                self._handle.tenant,
                self._handle.number,
            )
            return observation_of(exc)
        return None

    async def _watch(self, client: TelegramClientPort) -> None:
        """Report every ``updateLoginToken`` for the client's whole life (early scans too)."""
        try:
            while True:
                await client.wait_scanned()
                await self.report(ScanSeen())
                self._handle.poke(Scan())
        except TelegramError:
            return  # the driver sees the same failure on its next call

    async def _tick_after(self, seconds: float, number: int, scope: anyio.CancelScope) -> None:
        with scope:
            await self._deps.sleep(seconds)
            self._handle.poke(Tick(number))

    async def _next(self) -> Item:
        """The next thing to act on: a queued item, else wait for one or for the next timer."""
        queued = self._handle.queued_item()
        if queued is not None:
            return queued
        self._waits += 1
        when = wakeup_at(self._state, self._deps.policy)
        delay = math.inf if when is None else (when - self._deps.clock()).total_seconds()
        if delay <= 0:
            return Tick(self._waits)
        self._timer = anyio.CancelScope()
        if delay != math.inf:
            assert self._tg is not None  # noqa: S101 (set while the client is open)
            self._tg.start_soon(self._tick_after, delay, self._waits, self._timer)
        try:
            return await self._handle.next_item()
        finally:
            self._timer.cancel()

    async def _drive(self, client: TelegramClientPort) -> None:
        if self._state.status != "password_required":
            await self._export(client)
        while self._live():
            match await self._next():
                case Envelope() as envelope:
                    await self._check(client, envelope)
                case Scan():
                    await self._export(client)
                case Tick(number=number) if number == self._waits:
                    state, now = self._state, self._deps.clock()
                    if state.deadline is not None and now >= state.deadline:
                        await self.report(DeadlineReached())
                        return
                    due = refresh_at(state, self._deps.policy)
                    if due is not None and now >= due:
                        await self._export(client)

    async def call(
        self,
        call: Callable[[], Awaitable[_T]],
        method: str,
        answer: Envelope | None = None,
        trace: str | None = None,
    ) -> _T:
        """``call()``, waiting out the flood waits the machine accepts.

        Raises:
            GaveUpError: the machine gave up (``FloodWaited(retry_at=None)``, ``LoginFailed``).
        """
        deps = self._deps
        while True:
            try:
                return await call()
            except FloodWaitError as exc:
                flood = FloodWait(exc.seconds, exc.method or method, deps.random())
                state = await self.report(flood, answer=answer, trace=trace)
                if not self._live() or state.retry_at is None:
                    raise GaveUpError from None
                delay = (state.retry_at - deps.clock()).total_seconds()
                if delay > 0:
                    await deps.sleep(delay)

    async def _export(self, client: TelegramClientPort) -> None:
        result = await self.call(client.export_token, "auth.exportLoginToken")
        await follow_result(self, client, result)

    async def keep_key(self, client: TelegramClientPort) -> None:
        """Before a client's first QR is shown, keep its (not yet authorized) key in the vault:
        whoever resumes this attempt reconnects with it (:meth:`run`)."""
        if self._kept is client:
            return
        await self.save_pre_auth(client)
        self._kept = client

    async def save_pre_auth(self, client: TelegramClientPort) -> None:
        """Keep the half-finished 2FA session so that a restarted actor can finish it."""
        await self._deps.vault.put(self._handle.tenant, client.session_string(), stage="pre_auth")

    async def _check(self, client: TelegramClientPort, envelope: Envelope) -> None:
        tenant, command = self._handle.tenant, envelope.command
        assert isinstance(command, Password)  # noqa: S101 (only passwords are given)
        password, trace = command.password, envelope.trace
        try:
            success = await self.call(
                lambda: client.check_password(password), "auth.checkPassword", envelope, trace
            )
        except PasswordInvalidError:
            await self.report(PasswordWrong(), answer=envelope, trace=trace)
        except TelegramUnavailableError:
            envelope.refuse(tenant, "unavailable", "Telegram is unreachable; try again")
        except anyio.get_cancelled_exc_class():
            envelope.refuse(tenant, "unavailable", "the login was interrupted; retry")
            raise
        else:
            await self.succeed(client, success.user_id, success.dc_id, envelope, trace)
        finally:
            envelope.refuse(tenant, "wrong_state", "the attempt has ended")

    async def succeed(
        self,
        client: TelegramClientPort,
        user_id: int,
        dc_id: int,
        answer: Envelope | None = None,
        trace: str | None = None,
    ) -> None:
        """Report the authorized client; log a wrong account (ownership mismatch) out again."""
        session = client.session_string()
        observed = Succeeded(user_id, dc_id, session_fingerprint(session))
        state = await self.report(observed, answer=answer, trace=trace, session=session)
        if state.attempt == self._handle.number and state.status == "failed":
            try:
                await client.log_out()
            except TelegramError as exc:
                _log.warning(
                    "log out after ownership mismatch failed (%s) tenant=%s attempt=%d",
                    type(exc).__name__,
                    self._handle.tenant,
                    self._handle.number,
                )
