"""The tenant supervisor: one-for-one, a mailbox per tenant, restart with backoff.

Each tenant with work gets one task that runs its login actor and restarts it when it
raises: an ``ActorRestarted`` event, then a delay from :mod:`actors.backoff`; more than
``max_restarts`` crashes within the window end the tenant's attempt with
``LoginFailed(crashed)`` and leave every other tenant alone. An actor that returns (its
tenant is idle) frees its task and mailbox; the next command starts a new one, which
rehydrates from the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.login import LIVE, LoginState, fold
from events import (
    ActorRestarted,
    ConcurrencyConflictError,
    Event,
    EventLog,
    Head,
    LoginFailed,
    TenantQuarantinedError,
)

from ._backoff import BackoffPolicy, RestartTracker

__all__ = ["MailboxFullError", "SupervisorStatistics", "TenantSupervisor"]

log = logging.getLogger("tgqr.supervisor")

M = TypeVar("M")


class MailboxFullError(Exception):
    """Raised by :meth:`TenantSupervisor.submit` when a tenant's mailbox is full."""


class StoppedError(Exception):
    """Raised by :meth:`TenantSupervisor.submit` after the supervisor stopped."""


class MovedError(StoppedError):
    """Raised by :meth:`TenantSupervisor.submit` for a tenant this instance does not own (now)."""


_MOVED = "the tenant is served by another instance now; retry"


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """Live actors, restarts and give-ups since start."""

    live_actors: int
    restarts: int
    gave_up: int
    quarantined: int = 0


@dataclass(slots=True)
class _Child(Generic[M]):
    send: MemoryObjectSendStream[M]
    receive: MemoryObjectReceiveStream[M]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ended: anyio.Event = field(default_factory=anyio.Event)


class TenantSupervisor(Generic[M]):
    """Runs tenant actors. Start with ``await tg.start(supervisor.run)``.

    ``runner(tenant, send, receive)`` runs one actor over its mailbox (``send`` is for the
    actor's own observations) until it returns or raises. The supervisor writes
    ``ActorRestarted`` and ``LoginFailed(crashed)`` to ``event_log`` itself. ``refuse(tenant,
    mail, code, why)`` answers mail the supervisor drops (after give-up, for a quarantined
    tenant, or when it stops), so that every command gets its one reply. A quarantined tenant
    (its log holds messages that do not verify) is not restarted: each command finds out
    again from the log, so a release by anyone (``tgqr tenant repair``) takes effect at once.

    ``owns(tenant)``: whether this instance may run the tenant now (several instances: its
    partition is held here). A tenant it does not own is never started (:class:`MovedError`),
    and an actor that fails after its tenant moved away ends without a restart or an event.
    """

    def __init__(
        self,
        runner: Callable[
            [str, MemoryObjectSendStream[M], MemoryObjectReceiveStream[M]], Awaitable[None]
        ],
        *,
        event_log: EventLog,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        random: Callable[[], float],
        backoff: BackoffPolicy | None = None,
        mailbox_size: int = 32,
        on_restart: Callable[[str], None] | None = None,
        refuse: Callable[[str, M, str, str], None] | None = None,
        on_quarantine: Callable[[str], None] | None = None,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self._runner = runner
        self._owns = owns
        self._log = event_log
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._random = random
        self._backoff = backoff or BackoffPolicy()
        self._mailbox_size = mailbox_size
        self._on_restart = on_restart
        self._refuse = refuse
        self._on_quarantine = on_quarantine
        self._quarantined: set[str] = set()
        self._children: dict[str, _Child[M]] = {}
        self._tg: TaskGroup | None = None
        self._restarts = 0
        self._gave_up = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the tenant tasks until cancelled; cancelling stops every actor (each closes
        its Telegram client in its own ``finally``)."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None

    def submit(self, tenant: str, envelope: M) -> None:
        """Queue ``envelope`` for ``tenant``'s actor, starting the actor if needed.

        Never blocks: the order of ``submit`` calls is the order the actor sees.

        Raises:
            MailboxFullError: the tenant has too many commands queued.
            StoppedError: the supervisor is not running.
        """
        child = self._ensure(tenant)
        try:
            child.send.send_nowait(envelope)
        except anyio.WouldBlock as exc:
            raise MailboxFullError(f"tenant {tenant!r} is busy") from exc

    def ensure_running(self, tenant: str) -> None:
        """Start ``tenant``'s actor if it is not running (used to resume live tenants)."""
        self._ensure(tenant)

    async def stop_where(self, moved: Callable[[str], bool]) -> int:
        """Stop the actors of every tenant for which ``moved(tenant)`` is true and wait until
        each has ended (its Telegram client closed in its ``finally``); their queued commands
        are answered ``unavailable``. Returns how many were stopped."""
        stopping = [child for tenant, child in self._children.items() if moved(tenant)]
        for child in stopping:
            child.scope.cancel()
        for child in stopping:
            await child.ended.wait()
        return len(stopping)

    def statistics(self) -> SupervisorStatistics:
        return SupervisorStatistics(
            len(self._children), self._restarts, self._gave_up, len(self._quarantined)
        )

    def _ensure(self, tenant: str) -> _Child[M]:
        child = self._children.get(tenant)
        if child is not None:
            return child
        if self._tg is None:
            raise StoppedError("the supervisor is not running")
        if self._owns is not None and not self._owns(tenant):
            raise MovedError(_MOVED)
        send, receive = anyio.create_memory_object_stream[M](self._mailbox_size)
        child = _Child(send, receive)
        self._children[tenant] = child
        self._tg.start_soon(self._supervise, tenant, child, name=f"actor:{tenant}")
        return child

    async def _supervise(self, tenant: str, child: _Child[M]) -> None:
        try:
            with child.scope:
                await self._supervise_runs(tenant, child)
        finally:
            child.ended.set()

    async def _supervise_runs(self, tenant: str, child: _Child[M]) -> None:
        tracker = RestartTracker(self._backoff, self._random)
        # Conflicts (another writer) rehydrate with a backoff of their own that never gives up
        # and is never counted as a crash.
        conflicts = RestartTracker(BackoffPolicy(give_up=False), self._random)
        code, why = "unavailable", "the service is stopping"
        try:
            while True:
                tracker.on_started(self._monotonic())
                conflicts.on_started(self._monotonic())
                try:
                    # Clones per run: closing them leaves the supervisor's own ends open.
                    with child.send.clone() as send, child.receive.clone() as receive:
                        await self._runner(tenant, send, receive)
                except TenantQuarantinedError as exc:
                    self._note_quarantine(tenant, exc)
                    code, why = "tenant_quarantined", str(exc)
                    return
                except ConcurrencyConflictError:
                    if self._owns is not None and not self._owns(tenant):
                        why = _MOVED  # the new owner wrote: this instance's turn is over
                        return
                    delay = conflicts.on_crash(self._monotonic()).delay_s
                    log.warning("tenant=%s conflict, rehydrating in %.2fs", tenant, delay)
                    await self._sleep(delay)
                    continue
                except Exception as exc:
                    if self._owns is not None and not self._owns(tenant):
                        log.info("tenant=%s moved to another instance (%s)", tenant, exc)
                        why = _MOVED
                        return
                    if not await self._after_crash(tenant, tracker, exc):
                        why = "the tenant's actor crashed too often; retry later"
                        return
                    continue
                self._quarantined.discard(tenant)
                # The actor returned: its tenant is idle. Leave unless work arrived meanwhile
                # (checked and removed in one step: no await in between).
                if child.receive.statistics().current_buffer_used == 0:
                    return
        finally:
            if self._children.get(tenant) is child:
                del self._children[tenant]
            child.send.close()
            if child.scope.cancel_called:
                code, why = "unavailable", _MOVED
            self._drain(tenant, child, code, why)

    def _note_quarantine(self, tenant: str, exc: TenantQuarantinedError) -> None:
        """One log line and one metric per tenant that becomes quarantined."""
        if tenant in self._quarantined:
            return
        self._quarantined.add(tenant)
        seqs = ", ".join(str(seq) for seq, _ in exc.bad[:10])
        log.error("tenant=%s quarantined: messages %s do not verify", tenant, seqs)
        if self._on_quarantine is not None:
            self._on_quarantine(tenant)

    def _drain(self, tenant: str, child: _Child[M], code: str, why: str) -> None:
        """Answer whatever is still queued for ``tenant`` (nothing will run it)."""
        while True:
            try:
                mail = child.receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            if self._refuse is not None:
                self._refuse(tenant, mail, code, why)
        child.receive.close()

    async def _after_crash(self, tenant: str, tracker: RestartTracker, exc: Exception) -> bool:
        """Record the crash; return whether to restart. Errors here stay in this tenant."""
        error = type(exc).__name__
        decision = tracker.on_crash(self._monotonic())
        try:
            state, head = await self._state(tenant)
        except Exception as read_error:
            # The log is unreachable right now: restart later without recording the crash.
            log.warning("tenant=%s crashed (%s); log unreadable (%s)", tenant, error, read_error)
            await self._sleep(decision.delay_s)
            return not decision.give_up
        if decision.give_up:
            self._gave_up += 1
            log.error(
                "tenant=%s actor crashed %d times, giving up (%s)", tenant, decision.restart, error
            )
            if state.status in LIVE:
                failed = LoginFailed(
                    tenant=tenant, attempt=state.attempt, at=self._clock(), reason="crashed"
                )
                await self._append(tenant, head, failed)
            return False
        self._restarts += 1
        if self._on_restart is not None:
            self._on_restart(tenant)
        log.warning(
            "tenant=%s attempt=%d actor crashed (%s), restart %d in %.2fs",
            tenant,
            state.attempt,
            error,
            decision.restart,
            decision.delay_s,
        )
        restarted = ActorRestarted(
            tenant=tenant,
            attempt=state.attempt,
            at=self._clock(),
            restart=decision.restart,
            delay_s=round(decision.delay_s, 3),
            error=error,
        )
        await self._append(tenant, head, restarted)
        await self._sleep(decision.delay_s)
        return True

    async def _state(self, tenant: str) -> tuple[LoginState, Head]:
        records = await self._log.read_tenant(tenant)
        state = fold(LoginState(tenant=tenant), [r.event for r in records])
        head = Head(records[-1].seq, records[-1].mac) if records else Head()
        return state, head

    async def _append(self, tenant: str, head: Head, event: Event) -> None:
        try:
            await self._log.append(tenant, [event], head)
        except ConcurrencyConflictError:
            log.warning("tenant=%s could not record %s: log moved on", tenant, type(event).__name__)
        except Exception as exc:
            log.warning("tenant=%s could not record %s (%s)", tenant, type(event).__name__, exc)
