"""The tenant login actor: one loop over one mailbox, owning the tenant's state.

``run_actor(tenant, mailbox, deps)`` folds the tenant's events, resumes a live attempt, then
takes commands and its attempt's observations from the mailbox, in order, until the tenant
rests (no live attempt, no lease, empty mailbox). The loop is the only code that decides,
appends and evolves: the state is its local :class:`Ledger`. Every decision is the pure
machine's. While the session is leased the actor stays, with a timer that ends the lease when
it is not renewed (:mod:`._leasing`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

import anyio
import anyio.abc

from actors.telegram import (
    BreakerOpenError,
    SessionRevokedError,
    TelegramError,
    TelegramUnavailableError,
)
from events import Authorized, DeviceInfo, TenantQuarantinedError

from ._attempt import run_attempt
from ._decide import decide
from ._deps import ActorDeps, device_for, drop_pre_auth, log_out_before, open_client
from ._inbox import Attempt
from ._inputs import (
    Cancel,
    DeadlineReached,
    Decision,
    Lease,
    Logout,
    Password,
    Release,
    Renew,
    SessionRevoked,
    Start,
    Succeeded,
    Validate,
)
from ._leases import uses_session
from ._leasing import LeaseTimer, act_on_lease, expire_due, resume_lease
from ._ledger import Ledger
from ._mail import AttemptEnded, Envelope, Mail, Mailbox, Observed, Wake

__all__ = ["run_actor"]

_log = logging.getLogger("tgqr.actor")
_Launch = Callable[[], Attempt]


async def run_actor(
    tenant: str,
    mailbox: Mailbox,
    deps: ActorDeps,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``tenant``'s actor until its tenant rests with an empty mailbox.

    Reports readiness (``task_status.started()``) once the events are folded. The mailbox is
    not closed on return, so the supervisor can restart the actor on the same stream. Every
    command it took is answered on every path, a crash or cancellation included.

    Raises:
        ConcurrencyConflictError: another writer appended to the tenant (rehydrate by restarting).
        EventLogError, VaultError: the log or the vault failed.
        Exception: any unexpected error (the supervisor records ``ActorRestarted``).
    """
    ledger = await Ledger.hydrate(tenant, deps)
    task_status.started()
    try:
        async with anyio.create_task_group() as tg:

            def launch() -> Attempt:
                state = ledger.state
                handle = Attempt(tenant, state.attempt)
                tg.start_soon(run_attempt, handle, state, deps, mailbox.send)
                return handle

            await _loop(ledger, mailbox, launch, LeaseTimer(tg, deps, mailbox.send))
            tg.cancel_scope.cancel()  # nothing of this actor outlives it
    except BaseExceptionGroup as group:
        raise _sole(group) from None


async def _loop(ledger: Ledger, mailbox: Mailbox, launch: _Launch, timer: LeaseTimer) -> None:
    current = await _resume(ledger, launch)
    await resume_lease(ledger)
    while True:
        timer.follow(ledger.state)
        # Whatever is queued is taken without yielding first, so a command that arrived with an
        # observation reaches the attempt before the attempt waits for its next timer.
        try:
            mail: Mail = mailbox.receive.receive_nowait()
        except anyio.EndOfStream:
            return
        except anyio.WouldBlock:
            if current is None and ledger.state.lease is None:
                return  # the tenant rests
            mail = await mailbox.receive.receive()
        await expire_due(ledger)  # an overdue lease ends before anything else is decided
        match mail:
            case Envelope():
                current = await _command(ledger, mail, current, launch)
            case Observed():
                await _observed(ledger, mail, current)
            case AttemptEnded(source=source) if source is current:
                current = None
                await _attempt_over(ledger)
            case Wake():
                pass  # the lease timer: expire_due above did what was due


async def _resume(ledger: Ledger, launch: _Launch) -> Attempt | None:
    """A (re)started actor: expire an overdue attempt, else pick the live one up again."""
    state = ledger.state
    if not state.live:
        return None
    if state.deadline is not None and ledger.deps.clock() >= state.deadline:
        await ledger.apply(DeadlineReached())
        await drop_pre_auth(ledger.deps, ledger.tenant)
        return None
    # An authorized session in the vault under a live log: the actor stopped between saving
    # it and storing ``Authorized``. The log is the truth: forget it, the attempt goes on.
    entry = await ledger.deps.vault.get(ledger.tenant)
    if entry is not None and entry.stage == "authorized":
        _log.warning("tenant=%s dropping a session the log never announced", ledger.tenant)
        await ledger.deps.vault.delete(ledger.tenant)
    _log.info("resuming %s tenant=%s attempt=%d", state.status, ledger.tenant, state.attempt)
    return launch()


async def _attempt_over(ledger: Ledger) -> None:
    if not ledger.state.live and ledger.state.status != "authorized":
        await drop_pre_auth(ledger.deps, ledger.tenant)


async def _observed(ledger: Ledger, mail: Observed, current: Attempt | None) -> None:
    if mail.source is current:
        session = mail.session

        async def save(decision: Decision) -> None:
            vault = ledger.deps.vault
            if isinstance(decision.events[0], Authorized) and session is not None:
                # The session is stored before the event that announces it.
                await vault.put(ledger.tenant, session, stage="authorized")
            else:  # ownership mismatch: keep nothing of the wrong account
                await vault.delete(ledger.tenant)

        before = save if isinstance(mail.observation, Succeeded) else None
        decision = await ledger.apply(mail.observation, trace=mail.trace, before=before)
        if mail.answer is not None and decision.events:
            mail.answer.answer(ledger.reply(Decision()))
    mail.resolve(ledger.state, ledger.head.seq)


async def _command(
    ledger: Ledger, envelope: Envelope, current: Attempt | None, launch: _Launch
) -> Attempt | None:
    """Act on one command; it is answered on every path (an error re-raised after)."""
    if not envelope.claim():
        return current  # answered ``unavailable`` while it waited: it must not run
    try:
        decision, current = await _act(ledger, envelope, current, launch)
    except BreakerOpenError as exc:  # nothing was dialled, nothing stored
        retry = {"retry_after_s": exc.retry_after_s}
        decision = Decision(error="unavailable", message=str(exc), extra=retry)
    except TelegramError as exc:
        _log.info("telegram error %s tenant=%s", type(exc).__name__, ledger.tenant)
        decision = Decision(error="unavailable", message=_telegram_trouble(exc))
    except TenantQuarantinedError as exc:
        envelope.refuse(ledger.tenant, "tenant_quarantined", str(exc))
        raise
    except BaseException:
        envelope.refuse(ledger.tenant, "unavailable", "the tenant's actor stopped; retry")
        raise
    if decision is not None:
        envelope.answer(ledger.reply(decision))
    return current


async def _act(
    ledger: Ledger, envelope: Envelope, current: Attempt | None, launch: _Launch
) -> tuple[Decision | None, Attempt | None]:
    """The decision to answer with (None: someone else answers) and the attempt after."""
    command, trace = envelope.command, envelope.trace
    match command:
        case Start():
            # The log records the device this login names itself as, the service's defaults
            # filled in: the user saw that name, and validation and logout keep it.
            named_as = device_for(ledger.deps, command.device)
            named = DeviceInfo(
                model=named_as.model,
                system=named_as.system,
                app_version=named_as.app_version,
                lang=named_as.lang,
            )
            command = replace(command, device=named)
            decision = await ledger.apply(
                command, trace=trace, before=_before_start(ledger, command)
            )
            if decision.events:
                if current is not None:
                    await current.stop()
                await drop_pre_auth(ledger.deps, ledger.tenant)
                current = launch()
            return decision, current
        case Password():
            decision = decide(ledger.state, command, ledger.deps.clock(), ledger.deps.policy)
            if not decision.ok:
                return decision, current
            if current is None or not current.give(envelope):
                return Decision(error="unavailable", message="the attempt is busy; retry"), current
            return None, current  # the attempt answers after the password's first event
        case Cancel():
            decision = await ledger.apply(command, trace=trace)
            if decision.events and current is not None:
                await current.stop()
                current = None
                await _attempt_over(ledger)
            return decision, current
        case Logout():
            log_out = log_out_before(ledger.deps, ledger.tenant, ledger.state.device, strict=True)
            try:
                return await ledger.apply(command, trace=trace, before=log_out), current
            except SessionRevokedError:  # ended from the phone: that is what happened
                noticed = SessionRevoked(noticed_by="logout")
                return await ledger.apply(noticed, trace=trace), current
        case Validate():
            return await _validate(ledger, envelope), current
        case Lease() | Renew() | Release():
            envelope.answer(await act_on_lease(ledger, command, trace))
            return None, current


def _before_start(ledger: Ledger, start: Start) -> Callable[[Decision], Awaitable[None]]:
    """Log the old session out (through the old proxy), then keep the new attempt's proxy
    sealed in the vault (or forget the old one), before ``LoginStarted`` is stored."""
    log_out = log_out_before(ledger.deps, ledger.tenant, ledger.state.device)

    async def before(decision: Decision) -> None:
        gate = ledger.deps.telegram_gate
        if gate is not None and start.proxy_url is None and ledger.deps.proxy is None:
            gate()  # its DC's breaker is open: refused before anything is dialled or stored
        await log_out(decision)
        vault = ledger.deps.vault
        if start.proxy_url is not None:
            await vault.put_proxy(ledger.tenant, start.proxy_url)
        else:
            await vault.delete_proxy(ledger.tenant)

    return before


async def _validate(ledger: Ledger, envelope: Envelope) -> Decision:
    deps = ledger.deps
    decision = decide(ledger.state, envelope.command, deps.clock(), deps.policy)
    if not decision.ok or not uses_session(ledger.state):
        return decision  # while leased, validation pauses: the holder alone uses the session
    entry = await deps.vault.get(ledger.tenant)
    revoked = entry is None
    if entry is not None:
        try:
            device = ledger.state.device
            async with open_client(deps, ledger.tenant, entry.session, device=device) as client:
                await client.get_me()
        except SessionRevokedError:
            revoked = True
    if revoked:
        await deps.vault.delete(ledger.tenant)
        return await ledger.apply(SessionRevoked(), trace=envelope.trace)
    return decision


def _telegram_trouble(exc: TelegramError) -> str:
    if isinstance(exc, TelegramUnavailableError):
        return "Telegram is unreachable"
    return f"Telegram refused ({type(exc).__name__}); retry later"


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error a task group wrapped (the supervisor must see its real type)."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    if len(leaves) == 1:
        return leaves[0]
    return group
