"""The actor's side of session leases: the lease commands' IO and the lease timer.

The rules are the pure machine's (:mod:`._leases`); this module does what they need around
them. ``lease`` reads the stored session and seals it, and a fresh proof secret, to the
requester's key (HPKE, :mod:`actors.hpke`) *before* ``SessionLeased`` is appended, inside the
append's ``before`` hook: a tenant whose session cannot be read or sealed gets no lease recorded
for it, and the plaintext and the secret live only for that one call (the log keeps the
secret's digest). ``renew`` appends nothing: the extended expiry goes to the lease store and
the state (:mod:`._lease_records`). ``release`` (with ``revoked``: after logging the session
out, as ``logout`` does) and the expiry mark the lease ended in the store before they append.
The :class:`LeaseTimer` wakes the loop at the running lease's ``expires_at`` by posting
:class:`~._mail.Wake` into the actor's own mailbox: the loop never cancels its ``receive`` (a
cancelled receive could lose a command taken off the stream).
"""

from __future__ import annotations

import base64
import logging
import secrets
from dataclasses import replace
from datetime import datetime

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from actors.hpke import (
    PROOF_BYTES,
    InvalidPublicKeyError,
    lease_info,
    proof_info,
    proxy_info,
    seal,
)
from actors.lease_store import LeaseStoreError
from events import SessionLeased, SessionReleased

from ._deps import ActorDeps, device_for, log_out_before, proxy_for
from ._inputs import Decision, Lease, LeaseDue, Release, Renew
from ._lease_records import LeaseEndedError, adopt_renewal, mark_ended, store_renewal
from ._leases import proof_digest, renewal
from ._ledger import Ledger
from ._mail import CommandReply, Mail, Wake
from ._state import LoginState

__all__ = ["LeaseTimer", "act_on_lease", "expire_due", "resume_lease"]

_log = logging.getLogger("tgqr.actor")
_STORE_DOWN = "the lease store did not answer; retry"


class _NoSessionError(Exception):
    """The log says authorized, but the vault holds no authorized session to hand out."""


class _RenewedElsewhereError(Exception):
    """The lease a grant would end as expired was renewed by another actor of the tenant."""


async def resume_lease(ledger: Ledger) -> None:
    """A (re)started actor: take a renewal the store kept for the running lease, then end the
    lease if its time is up.

    Raises:
        LeaseStoreError: the store failed (the actor cannot know the lease's expiry).
        Exception: what :func:`expire_due` raises.
    """
    await adopt_renewal(ledger)
    await expire_due(ledger)


async def expire_due(ledger: Ledger) -> None:
    """End the tenant's lease if its time is up (``SessionReleased(expired)``), unless the
    store shows it renewed (by another actor of the tenant): that renewal is adopted. While the
    store does not answer the lease is not ended (nor renewed, nor replaced): the next wake or
    command tries again.

    Raises what :meth:`Ledger.apply` raises.
    """
    lease, now = ledger.state.lease, ledger.deps.clock()
    if lease is None or lease.running(now):
        return
    try:
        ending = await mark_ended(ledger, lease, now, expiring=True)
    except LeaseStoreError as exc:
        _log.warning("lease store failed tenant=%s: %s", ledger.tenant, type(exc).__name__)
        return
    if ending:
        await ledger.apply(LeaseDue())


async def act_on_lease(
    ledger: Ledger, command: Lease | Renew | Release, trace: str | None
) -> CommandReply:
    """Run a lease command; its reply (``extra``: the fields of docs/contract.md's lease table).

    Raises:
        TelegramError: ``release`` with ``revoked`` could not log the session out.
        ConcurrencyConflictError, EventLogError, VaultError: as :meth:`Ledger.apply`.
    """
    match command:
        case Lease():
            return await _grant(ledger, command, trace)
        case Renew():
            return await _renew(ledger, command)
        case Release():
            return await _release(ledger, command, trace)


def _ok(ledger: Ledger, extra: dict[str, object]) -> CommandReply:
    state = ledger.state
    return CommandReply(
        ok=True, tenant=ledger.tenant, attempt=state.attempt, state=state.status, extra=extra
    )


def _unavailable(ledger: Ledger, exc: LeaseStoreError) -> CommandReply:
    _log.warning("lease store failed tenant=%s: %s", ledger.tenant, type(exc).__name__)
    return ledger.reply(Decision(error="unavailable", message=_STORE_DOWN))


async def _renew(ledger: Ledger, command: Renew) -> CommandReply:
    renewed = renewal(ledger.state, command, ledger.deps.clock())
    if isinstance(renewed, Decision):
        return ledger.reply(renewed)
    try:
        await store_renewal(ledger, renewed)
    except LeaseEndedError:
        lost = f"lease {renewed.lease_id} is ending (expired or released elsewhere)"
        return ledger.reply(Decision(error="lease_lost", message=lost))
    except LeaseStoreError as exc:
        return _unavailable(ledger, exc)
    ledger.state = replace(ledger.state, lease=renewed)
    _log.debug(
        "lease renewed tenant=%s lease=%s fence=%d until=%s",
        ledger.tenant,
        renewed.lease_id,
        renewed.fence,
        renewed.expires_at.isoformat(),
    )
    if ledger.deps.telemetry is not None:
        ledger.deps.telemetry.session_lease(ledger.tenant, "renewed")
    extra = {
        "lease_id": renewed.lease_id,
        "fence": renewed.fence,
        "expires_at": renewed.expires_at,
    }
    return _ok(ledger, extra)


async def _release(ledger: Ledger, command: Release, trace: str | None) -> CommandReply:
    # acts only when revoked
    log_out = log_out_before(ledger.deps, ledger.tenant, ledger.state.device)
    lease = ledger.state.lease

    async def before(decision: Decision) -> None:
        # The holder proved itself (decide checked): the end is fenced in the store first,
        # so no renewal elsewhere succeeds after it; then the session is logged out if revoked.
        if lease is not None:
            await mark_ended(ledger, lease, ledger.deps.clock(), expiring=False)
        await log_out(decision)

    try:
        decision = await ledger.apply(command, trace=trace, before=before)
    except LeaseStoreError as exc:
        return _unavailable(ledger, exc)
    return _ok(ledger, {}) if decision.ok else ledger.reply(decision)


async def _grant(ledger: Ledger, command: Lease, trace: str | None) -> CommandReply:
    deps, tenant = ledger.deps, ledger.tenant
    # The fence is the head the grant is appended after: every later lease's head is higher.
    # Hex: an id never starts with "-", so it is safe as a command-line argument too.
    lease_id, secret = secrets.token_hex(12), secrets.token_bytes(PROOF_BYTES)
    command = replace(
        command,
        lease_id=lease_id,
        fence=ledger.head.seq,
        proof_digest=proof_digest(tenant, lease_id, secret),
    )
    sealed = proof_sealed = proxy_sealed = b""
    previous = ledger.state.lease

    async def seal_first(decision: Decision) -> None:
        nonlocal sealed, proof_sealed, proxy_sealed
        granted = decision.events[-1]
        assert isinstance(granted, SessionLeased)  # noqa: S101 (decide's grant ends so)
        ends = previous is not None and any(isinstance(e, SessionReleased) for e in decision.events)
        # The previous lease ran out just now: fence its end, unless renewed elsewhere.
        if ends and previous and not await mark_ended(ledger, previous, granted.at, expiring=True):
            raise _RenewedElsewhereError
        entry = await deps.vault.get(tenant)
        if entry is None or entry.stage != "authorized":
            raise _NoSessionError
        info = lease_info(tenant, granted.lease_id, granted.fence)
        sealed = seal(command.suite, command.public_key, entry.session.encode(), info)
        proof = proof_info(tenant, granted.lease_id, granted.fence)
        proof_sealed = seal(command.suite, command.public_key, secret, proof)
        proxy = await proxy_for(deps, tenant)  # the app connects the way tgqr does
        if proxy is not None:
            where = proxy_info(tenant, granted.lease_id, granted.fence)
            proxy_sealed = seal(command.suite, command.public_key, proxy.url.encode(), where)

    try:
        decision = await ledger.apply(command, trace=trace, before=seal_first)
    except _NoSessionError:
        decision = Decision(error="not_authorized", message="no stored session to lease")
    except InvalidPublicKeyError as exc:
        decision = Decision(error="invalid_request", message=str(exc))
    except _RenewedElsewhereError:
        decision = _leased_now(ledger)
    except LeaseStoreError as exc:
        return _unavailable(ledger, exc)
    state, lease = ledger.state, ledger.state.lease
    if not decision.ok or lease is None:
        return ledger.reply(decision)
    device = device_for(deps, state.device)
    more = {"proxy_sealed": base64.b64encode(proxy_sealed).decode()} if proxy_sealed else {}
    return _ok(
        ledger,
        {
            **more,
            "tenant": tenant,
            "lease_id": lease.lease_id,
            "fence": lease.fence,
            "expires_at": lease.expires_at,
            "user_id": state.user_id,
            "dc_id": state.dc_id,
            "suite": command.suite,
            "sealed": base64.b64encode(sealed).decode(),
            "proof_sealed": base64.b64encode(proof_sealed).decode(),
            # The commitment the log records too (public): lets the endpoint tell the holder's
            # renewals from anyone else's without seeing the proof's secret.
            "proof_digest": lease.proof_digest,
            # Connect as the device the user saw log in (Telethon's keyword arguments).
            "device": {
                "device_model": device.model,
                "system_version": device.system,
                "app_version": device.app_version,
                "lang_code": device.lang,
                "system_lang_code": device.system_lang,
            },
        },
    )


def _leased_now(ledger: Ledger) -> Decision:
    """The ``leased`` refusal for the running lease (adopted from the store)."""
    held = ledger.state.lease
    if held is None:  # pragma: no cover - the adoption sets it
        return Decision(error="unavailable", message="the lease changed meanwhile; retry")
    return Decision(
        error="leased",
        message=f"the session is leased to {held.holder} until {held.expires_at.isoformat()}",
        extra={"holder": held.holder, "expires_at": held.expires_at},
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
