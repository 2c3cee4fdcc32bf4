"""The reference model of the projection: the rules of :mod:`projections.sql`, one event
at a time, in plain Python. The store's set-based SQL must give the same rows
(``test_fold.py``), and the same ``state`` as ``actors.login.evolve`` (whose docstring has
the status table; ``tests/test_status_rules.py``); nothing in the service uses this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from events import (
    ActorRestarted,
    Authorized,
    Event,
    Expired,
    FloodWaited,
    LoggedOut,
    LoginCancelled,
    LoginFailed,
    LoginStarted,
    PasswordRejected,
    PasswordRequired,
    QrIssued,
    Scanned,
    SessionLeased,
    SessionReleased,
)

__all__ = [
    "AttemptKey",
    "CountKey",
    "Fold",
    "LeaseKey",
    "LoginAttempt",
    "SessionLease",
    "TenantStatus",
    "minute_of",
]

AttemptKey = tuple[str, int]
CountKey = tuple[datetime, str, str]  # (minute, tenant, event type)
LeaseKey = tuple[str, str]  # (tenant, lease_id)


@dataclass(slots=True)
class TenantStatus:
    """One row of ``tenant_status``: where a tenant's login stands, plus lifetime counters.

    ``qr_url``/``qr_expires_at`` are the QR to show while the attempt is live (cleared when
    it ends); ``user_id``/``dc_id`` come from ``Authorized`` and are cleared by a new attempt.
    ``proxy`` is the label of the last ``LoginStarted`` (None when it named no proxy).
    """

    tenant: str
    state: str = "idle"
    attempt: int = 0
    user_id: int | None = None
    qr_url: str | None = None
    qr_expires_at: datetime | None = None
    dc_id: int | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    last_event: str | None = None
    last_seq: int = 0
    attempts: int = 0
    qr_issued: int = 0
    flood_waits: int = 0
    restarts: int = 0
    lease_holder: str | None = None
    lease_expires_at: datetime | None = None
    proxy: str | None = None


@dataclass(slots=True)
class SessionLease:
    """One row of ``session_leases``: the first grant, the last expiry, the first ending."""

    tenant: str
    lease_id: str
    holder: str | None = None
    fence: int | None = None
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    grants: int = 0
    ended_at: datetime | None = None
    end_reason: str | None = None


@dataclass(slots=True)
class LoginAttempt:
    """One row of ``login_attempts``; ``outcome`` is None while the attempt is live.

    The ``time_to_*`` figures are seconds from ``started_at`` to the first ``Scanned`` and
    to ``Authorized``; None when either end is unknown.
    """

    tenant: str
    attempt: int
    started_at: datetime | None = None
    first_qr_at: datetime | None = None
    scanned_at: datetime | None = None
    authorized_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    fail_reason: str | None = None
    user_id: int | None = None
    qr_count: int = 0
    flood_waits: int = 0
    flood_wait_seconds: int = 0
    restarts: int = 0
    time_to_scan_s: float | None = None
    time_to_authorize_s: float | None = None


def minute_of(at: datetime) -> datetime:
    """The start of the minute ``at`` falls in (same timezone)."""
    return at.replace(second=0, microsecond=0)


def _type_of(event: Event) -> str:
    return type(event).__name__


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


@dataclass(slots=True)
class Fold:
    """The last state per key of the rows a batch touches.

    Seed ``status``/``attempts``/``counts`` with the stored rows of the touched keys, call
    :meth:`apply` for each event in stream order, then upsert every row of the three dicts.
    Rows not in a dict are created from their defaults on first use.
    """

    status: dict[str, TenantStatus] = field(default_factory=dict)
    attempts: dict[AttemptKey, LoginAttempt] = field(default_factory=dict)
    counts: dict[CountKey, int] = field(default_factory=dict)
    leases: dict[LeaseKey, SessionLease] = field(default_factory=dict)

    def apply(self, seq: int, event: Event) -> None:
        """Fold one event stored at stream sequence ``seq``."""
        tenant = event.tenant
        kind = _type_of(event)
        at = event.at
        key = (minute_of(at), tenant, kind)
        self.counts[key] = self.counts.get(key, 0) + 1

        row = self.status.get(tenant)
        if row is None:
            row = self.status[tenant] = TenantStatus(tenant)
        row.updated_at = at
        row.last_event = kind
        row.last_seq = seq
        attempt = self._attempt(tenant, event.attempt)

        match event:
            case LoginStarted():
                row.lease_holder = row.lease_expires_at = None
                row.state = "pending"
                row.attempt = event.attempt
                row.user_id = None
                row.dc_id = None
                row.qr_url = None
                row.qr_expires_at = None
                row.started_at = at
                row.proxy = event.proxy or None
                row.attempts += 1
                attempt.started_at = at
            case QrIssued():
                row.state = "pending"
                row.qr_url = event.url
                row.qr_expires_at = event.expires_at
                row.dc_id = event.dc_id
                row.qr_issued += 1
                attempt.qr_count += 1
                if attempt.first_qr_at is None:
                    attempt.first_qr_at = at
            case Scanned():
                row.state = "scanned"
                if attempt.scanned_at is None:
                    attempt.scanned_at = at
            case PasswordRequired() | PasswordRejected():
                row.state = "password_required"
            case Authorized():
                row.state = "authorized"
                row.user_id = event.user_id
                row.dc_id = event.dc_id
                self._clear_qr(row)
                attempt.user_id = event.user_id
                attempt.authorized_at = at
                self._end(attempt, "authorized", at)
            case Expired():
                row.state = "expired"
                self._clear_qr(row)
                self._end(attempt, "expired", at)
            case LoginFailed():
                row.state = "failed"
                self._clear_qr(row)
                if self._end(attempt, "failed", at):
                    attempt.fail_reason = event.reason
            case LoginCancelled():
                row.state = "cancelled"
                self._clear_qr(row)
                self._end(attempt, "cancelled", at)
            case LoggedOut():
                row.state = "logged_out"
                row.lease_holder = row.lease_expires_at = None
                self._clear_qr(row)
            case FloodWaited():
                row.flood_waits += 1
                attempt.flood_waits += 1
                attempt.flood_wait_seconds += event.seconds
            case ActorRestarted():
                row.restarts += 1
                attempt.restarts += 1
            case SessionLeased():
                row.lease_holder, row.lease_expires_at = event.holder, event.expires_at
                lease = self._lease(tenant, event.lease_id)
                if lease.granted_at is None:
                    lease.holder, lease.fence, lease.granted_at = event.holder, event.fence, at
                lease.expires_at = event.expires_at
                lease.grants += 1
            case SessionReleased():
                row.lease_holder = row.lease_expires_at = None
                lease = self._lease(tenant, event.lease_id)
                if lease.ended_at is None:
                    lease.ended_at, lease.end_reason = at, event.reason

        attempt.time_to_scan_s = _seconds(attempt.started_at, attempt.scanned_at)
        attempt.time_to_authorize_s = _seconds(attempt.started_at, attempt.authorized_at)

    def _lease(self, tenant: str, lease_id: str) -> SessionLease:
        found = self.leases.get((tenant, lease_id))
        if found is None:
            found = self.leases[tenant, lease_id] = SessionLease(tenant, lease_id)
        return found

    def _attempt(self, tenant: str, number: int) -> LoginAttempt:
        key = (tenant, number)
        found = self.attempts.get(key)
        if found is None:
            found = self.attempts[key] = LoginAttempt(tenant, number)
        return found

    @staticmethod
    def _clear_qr(row: TenantStatus) -> None:
        row.qr_url = None
        row.qr_expires_at = None

    @staticmethod
    def _end(attempt: LoginAttempt, outcome: str, at: datetime) -> bool:
        """Record the attempt's outcome unless it already has one; whether it did."""
        if attempt.outcome is not None:
            return False
        attempt.outcome = outcome
        attempt.ended_at = at
        return True
