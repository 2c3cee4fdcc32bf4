"""The one way a login actor changes state: decide, append at the head, evolve.

A :class:`Ledger` holds the tenant's folded state and the head of its hash chain. Only the
actor's loop holds one (it is a local of ``run_actor``): its attempt task sees copies of the
state, sent back in answer to what it observed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from events import (
    Authorized,
    Event,
    Expired,
    FloodWaited,
    Head,
    LoginFailed,
    LoginStarted,
    QrIssued,
    SessionLeased,
    SessionReleased,
    TenantQuarantinedError,
)

from ._decide import decide
from ._deps import ActorDeps
from ._inputs import Decision, Input
from ._mail import CommandReply
from ._state import LoginState, evolve, fold

__all__ = ["Ledger"]

_log = logging.getLogger("tgqr.actor")


class Ledger:
    """The tenant's state and chain head, and the append that moves both."""

    __slots__ = ("deps", "head", "state", "tenant")

    def __init__(self, tenant: str, deps: ActorDeps, state: LoginState, head: Head) -> None:
        self.tenant = tenant
        self.deps = deps
        self.state = state
        self.head = head

    @classmethod
    async def hydrate(cls, tenant: str, deps: ActorDeps) -> Ledger:
        """Fold the tenant's verified events (at most ``deps.hydration`` actors at once).

        Raises:
            TenantQuarantinedError: a stored message of the tenant does not verify.
            EventLogError: the log could not be read.
        """
        if deps.hydration is None:
            log = await deps.log.load_tenant(tenant)
        else:
            async with deps.hydration:
                log = await deps.log.load_tenant(tenant)
        if log.quarantined:
            raise TenantQuarantinedError(tenant, tuple((b.seq, b.reason) for b in log.bad))
        state = fold(LoginState(tenant=tenant), (record.event for record in log.records))
        return cls(tenant, deps, state, log.head)

    async def apply(
        self,
        given: Input,
        *,
        trace: str | None = None,
        before: Callable[[Decision], Awaitable[None]] | None = None,
    ) -> Decision:
        """Decide ``given`` now, run ``before`` (IO that must precede the events), append the
        events at the head and fold them.

        Raises:
            ConcurrencyConflictError: another writer appended (the actor must stop).
            EventLogError: the append failed.
        """
        decision = decide(self.state, given, self.deps.clock(), self.deps.policy, trace=trace)
        if not decision.events:
            return decision
        if before is not None:
            await before(decision)
        self.head = await self.deps.log.append(self.tenant, decision.events, self.head)
        for event in decision.events:
            held = self.state.lease
            renewal = held is not None and getattr(event, "lease_id", None) == held.lease_id
            self.state = evolve(self.state, event)
            self._note(event, renewal=renewal)
        return decision

    def reply(self, decision: Decision) -> CommandReply:
        """The answer to a command: the current state, or ``decision``'s rejection."""
        if decision.ok:
            state = self.state
            return CommandReply(
                ok=True, tenant=self.tenant, attempt=state.attempt, state=state.status
            )
        return CommandReply.error(
            self.tenant, decision.error or "", decision.message or "", decision.extra
        )

    def _note(self, event: Event, *, renewal: bool = False) -> None:
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
            case LoginFailed():
                detail = f" reason={event.reason}"
                if telemetry:
                    telemetry.login_failed(self.tenant, event.reason)
            case FloodWaited():
                detail = f" seconds={event.seconds} method={event.method}"
                if telemetry:
                    telemetry.floodwait(self.tenant, event.seconds, event.method)
            case SessionLeased():
                what = "renewed" if renewal else "granted"
                detail = f" {what} lease={event.lease_id} holder={event.holder} fence={event.fence}"
                if telemetry:
                    telemetry.session_lease(self.tenant, what)
            case SessionReleased():
                detail = f" lease={event.lease_id} reason={event.reason}"
                if telemetry:
                    telemetry.session_lease(self.tenant, event.reason)
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
