"""The login aggregate's state and its status rules: ``evolve``, ``fold`` and the timers.

Pure and synchronous: no IO and no clock. ``evolve(state, event)`` is the one definition of what
each event does to a tenant's status (the table in its docstring); the projection's SQL fold is
held to it by ``tests/test_status_rules.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final, Literal

from events import (
    ActorRestarted,
    Authorized,
    BackupFailed,
    BackupTaken,
    DeviceInfo,
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
    QuarantineLifted,
    Scanned,
    SessionLeased,
    SessionReleased,
    TelegramDown,
    TelegramUp,
)
from events import SessionRevoked as RevokedEvent

__all__ = [
    "LIVE",
    "MAX_TTL_S",
    "TERMINAL",
    "HeldLease",
    "LoginState",
    "Policy",
    "Status",
    "evolve",
    "fold",
    "refresh_at",
    "wakeup_at",
]

Status = Literal[
    "idle",
    "pending",
    "scanned",
    "password_required",
    "authorized",
    "expired",
    "failed",
    "cancelled",
    "logged_out",
]
LIVE: Final[frozenset[str]] = frozenset({"pending", "scanned", "password_required"})
TERMINAL: Final[frozenset[str]] = frozenset(
    {"idle", "authorized", "expired", "failed", "cancelled", "logged_out"}
)
MAX_TTL_S: Final = 600


@dataclass(frozen=True, slots=True)
class Policy:
    """The service-wide settings of every login (README, "Configuration", sets the TTL and the
    longest flood wait)."""

    qr_ttl_s: int = MAX_TTL_S
    refresh_before_s: float = 3.0
    flood_max_wait_s: int = 60
    flood_jitter: tuple[float, float] = (0.1, 0.3)
    password_tries: int = 5
    validate_every_s: float = 900.0


# --- state ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldLease:
    """The session's current holder (``SessionLeased``); ``ttl_s``: of its grant or last renewal;
    ``proof_digest``: the grant's commitment to the holder's proof (``""``: none, a grant stored
    before proofs existed). A renewal (no event) moves ``expires_at`` in the actor's state."""

    holder: str
    lease_id: str
    fence: int
    expires_at: datetime
    ttl_s: float
    proof_digest: str = ""

    def running(self, now: datetime) -> bool:
        """Whether the lease still runs at ``now`` (it ends at ``expires_at``)."""
        return now < self.expires_at


@dataclass(frozen=True, slots=True)
class LoginState:
    """One tenant's login as far as its events tell. ``attempt`` 0: never started."""

    tenant: str
    status: Status = "idle"
    attempt: int = 0
    deadline: datetime | None = None
    expected_user_id: int | None = None
    qr_url: str | None = None
    qr_issued_at: datetime | None = None
    qr_expires_at: datetime | None = None
    dc_id: int | None = None
    tries_left: int | None = None  # None: no password rejected yet in this attempt
    user_id: int | None = None
    retry_at: datetime | None = None  # a flood wait in progress
    last_event: str | None = None
    lease: HeldLease | None = None  # set by SessionLeased; cleared by SessionReleased, LoggedOut
    # and LoginStarted
    last_fence: int = 0  # the highest fence ever granted (fences only grow)
    device: DeviceInfo | None = None  # the tenant's own device fields (LoginStarted)

    @property
    def live(self) -> bool:
        """Whether an attempt is running (pending, scanned or password_required)."""
        return self.status in LIVE


def evolve(state: LoginState, event: Event) -> LoginState:
    """The state after ``event``: any event, in any state. The status rules, the only copy:

    ====================================  ==================================
    event                                 status after it
    ====================================  ==================================
    ``LoginStarted``, ``QrIssued``        ``pending``
    ``Scanned``                           ``scanned``
    ``PasswordRequired``,                 ``password_required``
    ``PasswordRejected``
    ``Authorized``                        ``authorized``
    ``Expired``                           ``expired``
    ``LoginFailed``                       ``failed``
    ``LoginCancelled``                    ``cancelled``
    ``LoggedOut``                         ``logged_out``
    ``FloodWaited``, ``ActorRestarted``,  unchanged
    ``QuarantineLifted``,
    ``SessionLeased``,
    ``SessionReleased``, ``SessionRevoked``
    ====================================  ==================================

    The lease (``lease``) is set by ``SessionLeased`` (a repeated grant of the same lease, as
    logs from before renewals left the log, replaces it) and cleared by ``SessionReleased``,
    ``LoggedOut`` and ``LoginStarted``; it never changes the status.

    The status depends on the event alone, never on the status before it: which event may
    follow which is :func:`decide`'s rule (no token during 2FA, no scan after the end, ...),
    and an event in the log has happened, so ``evolve`` does not judge it a second time. The
    projection's set-based fold (``projections.sql.STATE_AFTER``) states the same table;
    ``tests/test_status_rules.py`` holds the two equal on arbitrary histories.
    """
    s = replace(state, last_event=type(event).__name__)
    match event:
        case LoginStarted():
            return LoginState(
                tenant=state.tenant,
                status="pending",
                attempt=event.attempt,
                deadline=event.deadline,
                expected_user_id=event.expected_user_id,
                last_event="LoginStarted",
                # keep the authorized user id only until a new login replaces it
                user_id=None,
                last_fence=state.last_fence,
                device=event.device,
            )
        case QrIssued():
            return replace(
                s,
                status="pending",
                qr_url=event.url,
                qr_issued_at=event.at,
                qr_expires_at=event.expires_at,
                dc_id=event.dc_id,
                retry_at=None,
            )
        case Scanned():
            return replace(s, status="scanned")
        case PasswordRequired():
            return replace(s, status="password_required", qr_url=None, qr_expires_at=None)
        case PasswordRejected():
            return replace(
                s, status="password_required", tries_left=event.tries_left, retry_at=None
            )
        case Authorized():
            return replace(
                s,
                status="authorized",
                user_id=event.user_id,
                dc_id=event.dc_id,
                qr_url=None,
                qr_expires_at=None,
                retry_at=None,
            )
        case Expired():
            return _ended(s, "expired")
        case LoginFailed():
            return _ended(s, "failed")
        case LoginCancelled():
            return _ended(s, "cancelled")
        case LoggedOut():
            return replace(_ended(s, "logged_out"), user_id=None, lease=None)
        case FloodWaited():
            return replace(s, retry_at=event.retry_at)
        case SessionLeased():
            ttl_s = (event.expires_at - event.at).total_seconds()
            lease = HeldLease(
                event.holder,
                event.lease_id,
                event.fence,
                event.expires_at,
                ttl_s,
                event.proof_digest,
            )
            return replace(s, lease=lease, last_fence=max(s.last_fence, event.fence))
        case SessionReleased():
            return replace(s, lease=None)
        case ActorRestarted() | QuarantineLifted() | RevokedEvent():
            return s  # ``SessionRevoked`` is followed by the ``LoggedOut`` that ends it
        case TelegramDown() | TelegramUp() | BackupTaken() | BackupFailed():
            return s  # the service's own chains: never a tenant's state


def _ended(state: LoginState, status: Status) -> LoginState:
    return replace(state, status=status, qr_url=None, qr_expires_at=None, retry_at=None)


def fold(state: LoginState, events: Iterable[Event]) -> LoginState:
    """``evolve`` over ``events`` in order."""
    for event in events:
        state = evolve(state, event)
    return state


# --- timers --------------------------------------------------------------------------------


def refresh_at(state: LoginState, policy: Policy) -> datetime | None:
    """When the shell should export a fresh token: ``refresh_before_s`` before the current
    one expires (or half-way through a token that lives shorter than twice that)."""
    if state.status not in {"pending", "scanned"} or state.qr_expires_at is None:
        return None
    lead = timedelta(seconds=policy.refresh_before_s)
    if state.qr_issued_at is not None:
        lead = min(lead, (state.qr_expires_at - state.qr_issued_at) / 2)
    return state.qr_expires_at - lead


def wakeup_at(state: LoginState, policy: Policy) -> datetime | None:
    """The next time the shell must act without being told: a refresh or the deadline."""
    if not state.live:
        return None
    times = [t for t in (refresh_at(state, policy), state.deadline) if t is not None]
    return min(times) if times else None
