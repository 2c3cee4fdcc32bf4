"""The actor's side of session leases: the lease commands' IO and the lease timer.

The rules are the pure machine's (:mod:`._leases`); this module does what they need around
them. ``lease`` reads the stored session and seals it to the requester's key (HPKE,
:mod:`actors.hpke`) *before* ``SessionLeased`` is appended, inside the append's ``before`` hook:
a tenant whose session cannot be read or sealed gets no lease recorded for it, and the plaintext
lives only for that one call. ``release`` with ``revoked`` logs the session out first, as
``logout`` does. The :class:`LeaseTimer` wakes the loop at the running lease's ``expires_at``
by posting :class:`~._mail.Wake` into the actor's own mailbox: the loop never cancels its
``receive`` (a cancelled receive could lose a command taken off the stream).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import replace
from datetime import datetime

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from actors.hpke import InvalidPublicKeyError, lease_info, seal
from events import SessionLeased

from ._deps import ActorDeps, log_out_before
from ._inputs import Decision, Lease, LeaseDue, Release, Renew
from ._ledger import Ledger
from ._mail import CommandReply, Mail, Wake
from ._state import LoginState

__all__ = ["LeaseTimer", "act_on_lease", "expire_due"]


class _NoSessionError(Exception):
    """The log says authorized, but the vault holds no authorized session to hand out."""


async def expire_due(ledger: Ledger) -> None:
    """End the tenant's lease if its time is up (``SessionReleased(expired)``).

    Raises what :meth:`Ledger.apply` raises.
    """
    lease = ledger.state.lease
    if lease is not None and not lease.running(ledger.deps.clock()):
        await ledger.apply(LeaseDue())


async def act_on_lease(
    ledger: Ledger, command: Lease | Renew | Release, trace: str | None
) -> CommandReply:
    """Run a lease command; its reply (``extra``: the fields of DESIGN.md's table).

    Raises:
        TelegramError: ``release`` with ``revoked`` could not log the session out.
        ConcurrencyConflictError, EventLogError, VaultError: as :meth:`Ledger.apply`.
    """
    match command:
        case Lease():
            return await _grant(ledger, command, trace)
        case Renew():
            decision = await ledger.apply(command, trace=trace)
            lease = ledger.state.lease
            if not decision.ok or lease is None:
                return ledger.reply(decision)
            extra = {
                "lease_id": lease.lease_id,
                "fence": lease.fence,
                "expires_at": lease.expires_at,
            }
            return _ok(ledger, extra)
        case Release():
            before = log_out_before(ledger.deps, ledger.tenant)  # acts only when revoked
            decision = await ledger.apply(command, trace=trace, before=before)
            return _ok(ledger, {}) if decision.ok else ledger.reply(decision)


def _ok(ledger: Ledger, extra: dict[str, object]) -> CommandReply:
    state = ledger.state
    return CommandReply(
        ok=True, tenant=ledger.tenant, attempt=state.attempt, state=state.status, extra=extra
    )


async def _grant(ledger: Ledger, command: Lease, trace: str | None) -> CommandReply:
    deps, tenant = ledger.deps, ledger.tenant
    # The fence is the head the grant is appended after: every later lease's head is higher.
    # Hex: an id never starts with "-", so it is safe as a command-line argument too.
    command = replace(command, lease_id=secrets.token_hex(12), fence=ledger.head.seq)
    sealed = b""

    async def seal_first(decision: Decision) -> None:
        nonlocal sealed
        granted = decision.events[-1]
        assert isinstance(granted, SessionLeased)  # noqa: S101 (decide's grant ends so)
        entry = await deps.vault.get(tenant)
        if entry is None or entry.stage != "authorized":
            raise _NoSessionError
        info = lease_info(tenant, granted.lease_id, granted.fence)
        sealed = seal(command.suite, command.public_key, entry.session.encode(), info)

    try:
        decision = await ledger.apply(command, trace=trace, before=seal_first)
    except _NoSessionError:
        decision = Decision(error="not_authorized", message="no stored session to lease")
    except InvalidPublicKeyError as exc:
        decision = Decision(error="invalid_request", message=str(exc))
    state, lease = ledger.state, ledger.state.lease
    if not decision.ok or lease is None:
        return ledger.reply(decision)
    return _ok(
        ledger,
        {
            "tenant": tenant,
            "lease_id": lease.lease_id,
            "fence": lease.fence,
            "expires_at": lease.expires_at,
            "user_id": state.user_id,
            "dc_id": state.dc_id,
            "suite": command.suite,
            "sealed": base64.b64encode(sealed).decode(),
        },
    )


class LeaseTimer:
    """Wakes the actor's loop when the running lease is due. Call :meth:`follow` after every
    change; the timer task lives in the actor's task group."""

    __slots__ = ("_at", "_deps", "_scope", "_send", "_tg")

    def __init__(self, tg: TaskGroup, deps: ActorDeps, send: MemoryObjectSendStream[Mail]) -> None:
        self._tg = tg
        self._deps = deps
        self._send = send
        self._at: datetime | None = None
        self._scope = anyio.CancelScope()

    def follow(self, state: LoginState) -> None:
        """Aim the timer at ``state``'s lease expiry (or disarm it)."""
        at = state.lease.expires_at if state.lease is not None else None
        if at == self._at:
            return
        self._scope.cancel()
        self._at = at
        if at is not None:
            self._scope = anyio.CancelScope()
            self._tg.start_soon(self._fire, at, self._scope)

    async def _fire(self, at: datetime, scope: anyio.CancelScope) -> None:
        with scope:
            await self._deps.sleep(max((at - self._deps.clock()).total_seconds(), 0.0))
            if self._at == at:
                self._at = None  # re-armed by the next follow if the clock lags the timer
            await self._send.send(Wake())
