"""The session lease rules of the login aggregate (DESIGN.md, "Session leases"). Pure.

One holder at a time, like an etcd lease: ``lease`` is granted only for an authorized session
and only while no lease runs (the holder itself asking again gets ``leased`` too); ``renew``
and ``release`` only for the running lease (anything else is ``lease_lost``: expired, released
or superseded); a lease not renewed before ``expires_at`` ends with ``SessionReleased(expired)``
(when the shell's timer or a later command brings :class:`LeaseDue`). Every new lease gets a
fence above every earlier one; a renewal keeps it. Whatever logs the session out ends its lease
first, so the log never shows a lease outliving its session.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, TypedDict

from events import Event, LoggedOut, SessionLeased, SessionReleased

from ._inputs import Decision, Lease, LeaseDue, Release, Renew
from ._state import HeldLease, LoginState

__all__ = [
    "LEASE_TTL_S",
    "MAX_LEASE_TTL_S",
    "MIN_LEASE_TTL_S",
    "decide_lease",
    "end_lease",
    "uses_session",
]

LEASE_TTL_S: Final = 300
MIN_LEASE_TTL_S: Final = 10
MAX_LEASE_TTL_S: Final = 3600


class _Env(TypedDict):
    tenant: str
    attempt: int
    at: datetime
    trace: str | None


def _reject(code: str, message: str, **extra: object) -> Decision:
    return Decision(error=code, message=message, extra=extra)


def _ttl_error(ttl_s: float) -> Decision | None:
    if MIN_LEASE_TTL_S <= ttl_s <= MAX_LEASE_TTL_S:
        return None
    return _reject("invalid_request", f"ttl_s must be within {MIN_LEASE_TTL_S}..{MAX_LEASE_TTL_S}")


def _running(state: LoginState, lease_id: str, now: datetime) -> HeldLease | None:
    """The lease ``lease_id`` if it is the one that runs at ``now``."""
    lease = state.lease
    if lease is None or lease.lease_id != lease_id or not lease.running(now):
        return None
    return lease


def _lost(state: LoginState, lease_id: str) -> Decision:
    lease = state.lease
    if lease is not None and lease.lease_id == lease_id:
        why = f"lease {lease_id} expired at {lease.expires_at.isoformat()}"
    else:
        why = f"lease {lease_id} is not the tenant's lease (ended or superseded)"
    return _reject("lease_lost", why)


def end_lease(
    state: LoginState, now: datetime, reason: str, trace: str | None = None
) -> tuple[Event, ...]:
    """``SessionReleased`` of the tenant's lease, if it has one (``expired`` once its time is
    up, else ``reason``): what precedes anything that ends the session."""
    lease = state.lease
    if lease is None:
        return ()
    why = reason if lease.running(now) else "expired"
    return (
        SessionReleased(
            tenant=state.tenant,
            attempt=state.attempt,
            at=now,
            trace=trace,
            lease_id=lease.lease_id,
            reason=why,
        ),
    )


def uses_session(state: LoginState) -> bool:
    """Whether the service may use the stored session itself: not while it is leased (until
    the lease has ended in the log)."""
    return state.lease is None


def decide_lease(
    state: LoginState,
    given: Lease | Renew | Release | LeaseDue,
    now: datetime,
    *,
    trace: str | None = None,
) -> Decision:
    """The events of a lease command (or the timer) in ``state`` at ``now``, or the refusal:
    ``not_authorized``, ``leased`` (with ``holder`` and ``expires_at``), ``lease_lost`` or
    ``invalid_request``."""
    env = _Env(tenant=state.tenant, attempt=state.attempt, at=now, trace=trace)
    match given:
        case Lease():
            if (bad := _ttl_error(given.ttl_s)) is not None:
                return bad
            if not given.lease_id:
                return _reject("invalid_request", "a lease needs an id")
            if state.status != "authorized":
                return _reject("not_authorized", f"no authorized session ({state.status})")
            held = state.lease
            if held is not None and held.running(now):
                return _reject(
                    "leased",
                    f"the session is leased to {held.holder} until {held.expires_at.isoformat()}",
                    holder=held.holder,
                    expires_at=held.expires_at,
                )
            granted = SessionLeased(
                **env,
                holder=given.holder,
                lease_id=given.lease_id,
                fence=max(given.fence, state.last_fence + 1),
                expires_at=now + timedelta(seconds=given.ttl_s),
            )
            return Decision((*end_lease(state, now, "expired", trace), granted))
        case Renew():
            lease = _running(state, given.lease_id, now)
            if lease is None:
                return _lost(state, given.lease_id)
            ttl_s = lease.ttl_s if given.ttl_s is None else given.ttl_s
            if (bad := _ttl_error(ttl_s)) is not None:
                return bad
            renewed = SessionLeased(
                **env,
                holder=lease.holder,
                lease_id=lease.lease_id,
                fence=lease.fence,
                expires_at=now + timedelta(seconds=ttl_s),
            )
            return Decision((renewed,))
        case Release():
            if _running(state, given.lease_id, now) is None:
                return _lost(state, given.lease_id)
            if not given.revoked:
                return Decision(end_lease(state, now, "released", trace))
            logged_out = LoggedOut(**env, reason="revoked")
            return Decision((*end_lease(state, now, "revoked", trace), logged_out))
        case LeaseDue():
            if state.lease is None or state.lease.running(now):
                return Decision()
            return Decision(end_lease(state, now, "expired", trace))
