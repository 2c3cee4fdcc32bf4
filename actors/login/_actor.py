"""The tenant login actor: the IO shell around :mod:`actors.machine`.

``run_actor(tenant, mailbox, deps)`` folds the tenant's events, resumes a live attempt, then
serves commands from its bounded mailbox until the tenant rests (no live attempt, empty
mailbox). Every decision is the pure machine's; this module only talks to Telegram, the vault
and the event log, and keeps time with the injected clock and sleep. The attempt driver lives
in :mod:`actors._login`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream

from actors.telegram import (
    SessionRevokedError,
    TelegramClientPort,
    TelegramPort,
    TelegramUnavailableError,
)
from actors.telemetry import Telemetry
from actors.vault import SessionVault
from events import (
    Authorized,
    ConcurrencyConflictError,
    Event,
    EventLog,
    Expired,
    FloodWaited,
    Head,
    LoggedOut,
    LoginStarted,
    QrIssued,
)

from ._attempt import Login, TimedClient
from ._decide import decide
from ._inputs import (
    Cancel,
    DeadlineReached,
    Decision,
    Input,
    Logout,
    Password,
    SessionRevoked,
    Start,
    Validate,
)
from ._state import (
    LoginState,
    Policy,
    evolve,
    fold,
)

__all__ = [
    "ActorDeps",
    "CommandReply",
    "ConcurrencyConflictError",
    "Envelope",
    "Policy",
    "run_actor",
]

_log = logging.getLogger("tgqr.actor")
_DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The answer to one command, sent once its first event is stored."""

    ok: bool
    tenant: str
    attempt: int | None = None
    state: str | None = None
    error_code: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        """DESIGN.md's reply shape."""
        if self.ok:
            return {"ok": True, "tenant": self.tenant, "attempt": self.attempt, "state": self.state}
        return {"ok": False, "error": {"code": self.error_code, "message": self.message or ""}}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A command in a mailbox: ``reply`` is called exactly once, ``trace`` is a traceparent."""

    command: Start | Password | Cancel | Logout | Validate
    reply: Callable[[CommandReply], None]
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class ActorDeps:
    """Everything an actor touches, wired at the composition root."""

    log: EventLog
    telegram: TelegramPort
    vault: SessionVault
    clock: Callable[[], datetime]
    sleep: Callable[[float], Awaitable[None]]
    random: Callable[[], float]
    policy: Policy = _DEFAULT_POLICY
    telemetry: Telemetry | None = None


async def run_actor(
    tenant: str,
    mailbox: MemoryObjectReceiveStream[Envelope],
    deps: ActorDeps,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``tenant``'s actor until its tenant rests with an empty mailbox (or it ends).

    Reports readiness (``task_status.started()``) once the events are folded. The mailbox is
    not closed on return, so the supervisor can restart the actor on the same stream.

    Raises:
        ConcurrencyConflictError: another writer appended to the tenant (rehydrate by restarting).
        EventLogError, VaultError: the log or the vault failed.
        Exception: any unexpected error (the supervisor records ``ActorRestarted``).
    """
    records = await deps.log.read_tenant(tenant)
    state = fold(LoginState(tenant=tenant), (record.event for record in records))
    head = Head(records[-1].seq, records[-1].mac) if records else Head()
    actor = _Actor(tenant, deps, state, head, mailbox)
    task_status.started()
    await actor.run()


class _Actor:
    """One tenant's running actor (the state is a field, the mailbox its only input)."""

    __slots__ = (
        "_closed",
        "_idle",
        "_lock",
        "_mailbox",
        "_tg",
        "deps",
        "head",
        "login",
        "state",
        "tenant",
    )

    def __init__(
        self,
        tenant: str,
        deps: ActorDeps,
        state: LoginState,
        head: Head,
        mailbox: MemoryObjectReceiveStream[Envelope],
    ) -> None:
        self.tenant = tenant
        self.deps = deps
        self.state = state
        self.head = head
        self.login: Login | None = None
        self._mailbox = mailbox
        self._lock = anyio.Lock()
        self._idle: anyio.CancelScope | None = None
        self._closed = False
        self._tg: anyio.abc.TaskGroup | None = None

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await self._resume()
                while True:
                    if self.login is None and (
                        self._closed or self._mailbox.statistics().current_buffer_used == 0
                    ):
                        break
                    envelope = await self._next()
                    if envelope is not None:
                        await self._handle(envelope)
                    elif self._closed and self.login is not None:
                        await self.login.done.wait()
        except BaseExceptionGroup as group:
            leaves = _leaves(group)
            if len(leaves) == 1:
                raise leaves[0] from None
            raise

    async def _next(self) -> Envelope | None:
        """The next command, or None when woken because the attempt ended or mail closed."""
        with anyio.CancelScope() as scope:
            self._idle = scope
            try:
                return await self._mailbox.receive()
            except anyio.EndOfStream:
                self._closed = True
            finally:
                self._idle = None
        return None

    async def wake(self) -> None:
        """Wake the loop out of ``receive`` without losing a command handed to it.

        Cancelling is safe while the loop is registered as a waiter (a sender then buffers the
        item instead) or before it registers; it is not once an item was handed over, which is
        when it is no longer counted as waiting. Checkpoint until the situation is clear.
        """
        while (scope := self._idle) is not None:
            stats = self._mailbox.statistics()
            if stats.tasks_waiting_receive > 0 and stats.current_buffer_used == 0:
                scope.cancel()
                return
            await anyio.lowlevel.checkpoint()

    # --- commands ----------------------------------------------------------------------------

    async def _handle(self, envelope: Envelope) -> None:
        command = envelope.command
        match command:
            case Start():
                decision = await self.apply(command, trace=envelope.trace, before=self._logout_io)
                if decision.events and self.login is not None:
                    await self.login.stop()
                if decision.events:
                    self._launch(self.state.attempt)
            case Password():
                decision = decide(self.state, command, self.deps.clock(), self.deps.policy)
                if decision.ok and self.login is not None:
                    self.login.submit(envelope)
                    return
            case Cancel():
                decision = await self.apply(command, trace=envelope.trace)
                if decision.events and self.login is not None:
                    await self.login.stop()
            case Logout():
                try:
                    decision = await self.apply(
                        command, trace=envelope.trace, before=self._logout_io
                    )
                except TelegramUnavailableError:
                    decision = Decision(error="unavailable", message="Telegram is unreachable")
            case Validate():
                decision = await self._validate(envelope)
        self.answer(envelope, decision)

    def answer(self, envelope: Envelope, decision: Decision) -> None:
        """Reply to ``envelope`` with the current state, or with ``decision``'s rejection."""
        if decision.ok:
            reply = CommandReply(
                ok=True, tenant=self.tenant, attempt=self.state.attempt, state=self.state.status
            )
        else:
            reply = CommandReply(
                ok=False, tenant=self.tenant, error_code=decision.error, message=decision.message
            )
        envelope.reply(reply)

    async def _logout_io(self, decision: Decision) -> None:
        """Before ``LoggedOut(command)`` is stored: log the stored session out and drop it."""
        if not any(isinstance(e, LoggedOut) for e in decision.events):
            return
        entry = await self.deps.vault.get(self.tenant)
        if entry is not None:
            async with self.client(entry.session) as client:
                with contextlib.suppress(SessionRevokedError):  # already dead: fine
                    await client.log_out()
        await self.deps.vault.delete(self.tenant)

    async def _validate(self, envelope: Envelope) -> Decision:
        decision = decide(self.state, envelope.command, self.deps.clock(), self.deps.policy)
        if not decision.ok:
            return decision
        entry = await self.deps.vault.get(self.tenant)
        revoked = entry is None
        if entry is not None:
            try:
                async with self.client(entry.session) as client:
                    await client.get_me()
            except SessionRevokedError:
                revoked = True
            except TelegramUnavailableError:
                return Decision(error="unavailable", message="Telegram is unreachable")
        if revoked:
            await self.deps.vault.delete(self.tenant)
            return await self.apply(SessionRevoked(), trace=envelope.trace)
        return decision

    # --- attempts ----------------------------------------------------------------------------

    async def _resume(self) -> None:
        """A restarted actor: expire an overdue attempt, else pick the live one up again."""
        state = self.state
        if not state.live:
            return
        if state.deadline is not None and self.deps.clock() >= state.deadline:
            await self.apply(DeadlineReached(), attempt=state.attempt)
            await Login.drop_pre_auth(self)
            return
        _log.info("resuming %s tenant=%s attempt=%d", state.status, self.tenant, state.attempt)
        self._launch(state.attempt)

    def _launch(self, attempt: int) -> None:
        assert self._tg is not None  # noqa: S101 (set for the loop's whole life)
        self.login = Login(self, attempt)
        self._tg.start_soon(self.login.run)

    def client_ended(self, login: Login) -> None:
        if self.login is login:
            self.login = None

    # --- the one way to change state ---------------------------------------------------------

    async def apply(
        self,
        given: Input,
        *,
        attempt: int | None = None,
        trace: str | None = None,
        before: Callable[[Decision], Awaitable[None]] | None = None,
    ) -> Decision:
        """Decide ``given`` now, run ``before`` (IO that must precede the events), append the
        events at the head and fold them. An observation of another ``attempt`` is ignored.

        Raises:
            ConcurrencyConflictError: another writer appended (the actor must restart).
        """
        async with self._lock:
            if attempt is not None and attempt != self.state.attempt:
                return Decision()
            decision = decide(self.state, given, self.deps.clock(), self.deps.policy, trace=trace)
            if not decision.events:
                return decision
            if before is not None:
                await before(decision)
            self.head = await self.deps.log.append(self.tenant, decision.events, self.head)
            for event in decision.events:
                self.state = evolve(self.state, event)
                self._note(event)
            return decision

    def _note(self, event: Event) -> None:
        """One log line and the metrics of a stored event (never a secret)."""
        name = type(event).__name__
        detail = ""
        telemetry = self.deps.telemetry
        match event:
            case LoginStarted():
                if telemetry:
                    telemetry.qr_start(self.tenant)
            case QrIssued():
                detail = f" dc={event.dc_id}"
                if telemetry:
                    telemetry.qr_published(self.tenant)
            case Authorized():
                detail = f" user_id={event.user_id} dc={event.dc_id}"
                if telemetry:
                    telemetry.qr_success(self.tenant)
            case Expired():
                if telemetry:
                    telemetry.qr_expired(self.tenant)
            case FloodWaited():
                detail = f" seconds={event.seconds} method={event.method}"
                if telemetry:
                    telemetry.floodwait(self.tenant, event.seconds, event.method)
            case _:
                reason = getattr(event, "reason", None)
                detail = f" reason={reason}" if reason else ""
        _log.info(
            "%s tenant=%s attempt=%d%s",
            name,
            self.tenant,
            event.attempt,
            detail,
            extra={"tenant": self.tenant, "attempt": event.attempt, "event": name},
        )

    # --- clients -----------------------------------------------------------------------------

    def client(self, session: str | None = None) -> TimedClient:
        """``open_client`` whose close is timed (``session_cleanup``) and shielded."""
        return TimedClient(self, session)

    def spawn(
        self,
        func: Callable[[TelegramClientPort], Coroutine[Any, Any, None]],
        client: TelegramClientPort,
    ) -> None:
        """Run ``func(client)`` in the actor's task group (the scan watcher)."""
        assert self._tg is not None  # noqa: S101 (set for the loop's whole life)
        self._tg.start_soon(func, client)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out
