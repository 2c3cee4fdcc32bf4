"""The session lease rules of the login aggregate (docs/contract.md, "Session leases"). Pure.

One holder at a time, like an etcd lease: ``lease`` is granted only for an authorized session
and only while no lease runs (the holder itself asking again gets ``leased`` too); ``renew``
and ``release`` only for the running lease (anything else is ``lease_lost``: expired, released
or superseded) and only with its proof (else ``lease_proof_invalid``); a lease not renewed
before ``expires_at`` ends with ``SessionReleased(expired)`` (when the shell's timer or a later
command brings :class:`LeaseDue`). Every new lease gets a fence above every earlier one; a
renewal keeps it. Whatever logs the session out ends its lease first, so the log never shows a
lease outliving its session.

The proof is a secret the shell seals to the holder with the session; the grant records only
:func:`proof_digest` of it, so nothing in the log lets anyone but the holder renew, release or
revoke. A renewal is no event: :func:`renewal` gives the extended lease, which the shell keeps
durably beside the log (the ``tgqr_leases`` bucket) and in its state.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final, TypedDict

from events import Event, LoggedOut, SessionLeased, SessionReleased
from events import SessionRevoked as RevokedEvent

from ._inputs import Decision, Lease, LeaseDue, Release, Renew
from ._state import HeldLease, LoginState

__all__ = [
    "LEASE_TTL_S",
    "MAX_LEASE_TTL_S",
    "MIN_LEASE_TTL_S",
    "PROOF_INVALID",
    "decide_lease",
    "end_lease",
    "proof_digest",
    "renewal",
    "uses_session",
]

LEASE_TTL_S: Final = 300
MIN_LEASE_TTL_S: Final = 10
MAX_LEASE_TTL_S: Final = 3600
PROOF_INVALID: Final = "lease_proof_invalid"
"""The refusal of a renew or release of the running lease without its proof."""
_DIGEST_LABEL: Final = b"tgqr-lease-proof-digest\x00"


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


def proof_digest(tenant: str, lease_id: str, proof: bytes) -> str:
    """The commitment to a lease's proof that ``SessionLeased`` records: hex SHA-256 of the
    proof under a domain label, the tenant and the lease id (so it names this lease only)."""
    bound = f"{tenant}|{lease_id}".encode()
    return hashlib.sha256(_DIGEST_LABEL + bound + b"\x00" + proof).hexdigest()


def _proven(state: LoginState, lease: HeldLease, proof: bytes) -> bool:
    """Whether ``proof`` is ``lease``'s (constant time); a lease without a digest has none."""
    if not lease.proof_digest:
        return False
    given = proof_digest(state.tenant, lease.lease_id, proof)
    return hmac.compare_digest(given, lease.proof_digest)


def _unproven(lease: HeldLease) -> Decision:
    if not lease.proof_digest:
        why = f"lease {lease.lease_id} has no proof (granted before proofs): it only expires"
    else:
        why = f"the proof does not match lease {lease.lease_id}: only its holder may use it"
    return _reject(PROOF_INVALID, why)


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


def renewal(state: LoginState, given: Renew, now: datetime) -> HeldLease | Decision:
    """The running lease extended by ``given`` at ``now`` (``ttl_s``: the given one, else the
    lease's own), or the refusal: ``lease_lost``, ``lease_proof_invalid``, ``invalid_request``.
    A renewal keeps the holder, lease id, fence and proof digest."""
    lease = _running(state, given.lease_id, now)
    if lease is None:
        return _lost(state, given.lease_id)
    if not _proven(state, lease, given.proof):
        return _unproven(lease)
    ttl_s = lease.ttl_s if given.ttl_s is None else given.ttl_s
    if (bad := _ttl_error(ttl_s)) is not None:
        return bad
    return replace(lease, expires_at=now + timedelta(seconds=ttl_s), ttl_s=ttl_s)


def decide_lease(
    state: LoginState,
    given: Lease | Renew | Release | LeaseDue,
    now: datetime,
    *,
    trace: str | None = None,
) -> Decision:
    """The events of a lease command (or the timer) in ``state`` at ``now``, or the refusal:
    ``not_authorized``, ``leased`` (with ``holder`` and ``expires_at``), ``lease_lost``,
    ``lease_proof_invalid`` or ``invalid_request``. An accepted renewal has no events (see
    :func:`renewal` for the lease it gives)."""
    env = _Env(tenant=state.tenant, attempt=state.attempt, at=now, trace=trace)
    match given:
        case Lease():
            if (bad := _ttl_error(given.ttl_s)) is not None:
                return bad
            if not given.lease_id or not given.proof_digest:
                return _reject("invalid_request", "a lease needs an id and a proof digest")
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
                proof_digest=given.proof_digest,
            )
            return Decision((*end_lease(state, now, "expired", trace), granted))
        case Renew():
            renewed = renewal(state, given, now)
            return renewed if isinstance(renewed, Decision) else Decision()
        case Release():
            lease = _running(state, given.lease_id, now)
            if lease is None:
                return _lost(state, given.lease_id)
            if not _proven(state, lease, given.proof):
                return _unproven(lease)
            if not given.revoked:
                return Decision(end_lease(state, now, "released", trace))
            revoked = RevokedEvent(**env, noticed_by="holder")
            logged_out = LoggedOut(**env, reason="revoked")
            return Decision((*end_lease(state, now, "revoked", trace), revoked, logged_out))
        case LeaseDue():
            if state.lease is None or state.lease.running(now):
                return Decision()
            return Decision(end_lease(state, now, "expired", trace))
