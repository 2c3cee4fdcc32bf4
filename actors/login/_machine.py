"""The tenant login state machine: pure, synchronous, no IO and no clock.

``decide(state, input, now, policy)`` turns a command or an observation of the Telegram shell
into events (or a rejection); ``evolve(state, event)`` folds one event into the state. Every
policy of DESIGN.md lives here: the one service-wide TTL, the refresh time of the QR, the
result switch, 2FA tries, flood waits, ownership and idempotent ``start``. The actor
(:mod:`actors.actor`) only does the IO around these two functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final, Literal, TypedDict

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
)

__all__ = [
    "LIVE",
    "MAX_TTL_S",
    "TERMINAL",
    "Cancel",
    "Command",
    "ConfigRefused",
    "DeadlineReached",
    "Decision",
    "FloodWait",
    "Input",
    "LoginState",
    "Logout",
    "Migrating",
    "Observation",
    "Password",
    "PasswordNeededSeen",
    "PasswordWrong",
    "Policy",
    "ScanSeen",
    "SessionLost",
    "SessionRevoked",
    "Start",
    "Status",
    "Succeeded",
    "TelegramDown",
    "TokenExpiredOnImport",
    "TokenExported",
    "TokenRefused",
    "Validate",
    "decide",
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
    """The service-wide settings of every login (DESIGN.md, "Policies")."""

    qr_ttl_s: int = MAX_TTL_S
    refresh_before_s: float = 3.0
    flood_max_wait_s: int = 60
    flood_jitter: tuple[float, float] = (0.1, 0.3)
    password_tries: int = 5
    validate_every_s: float = 900.0


# --- state ---------------------------------------------------------------------------------


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

    @property
    def live(self) -> bool:
        """Whether an attempt is running (pending, scanned or password_required)."""
        return self.status in LIVE


def evolve(state: LoginState, event: Event) -> LoginState:
    """The state after ``event``. Total: an event that does not fit changes only bookkeeping."""
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
            )
        case QrIssued():
            return replace(
                s,
                status="pending" if s.status in LIVE else s.status,
                qr_url=event.url,
                qr_issued_at=event.at,
                qr_expires_at=event.expires_at,
                dc_id=event.dc_id,
                retry_at=None,
            )
        case Scanned():
            return replace(s, status="scanned" if s.status == "pending" else s.status)
        case PasswordRequired():
            return replace(s, status="password_required", qr_url=None, qr_expires_at=None)
        case PasswordRejected():
            return replace(s, tries_left=event.tries_left, retry_at=None)
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
            return replace(_ended(s, "logged_out"), user_id=None)
        case FloodWaited():
            return replace(s, retry_at=event.retry_at)
        case ActorRestarted():
            return s


def _ended(state: LoginState, status: Status) -> LoginState:
    return replace(state, status=status, qr_url=None, qr_expires_at=None, retry_at=None)


def fold(state: LoginState, events: Iterable[Event]) -> LoginState:
    """``evolve`` over ``events`` in order."""
    for event in events:
        state = evolve(state, event)
    return state


# --- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Command ``start``: a new attempt, or the active one (idempotent); ``force`` replaces."""

    expected_user_id: int | None = None
    ttl_s: int | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class Password:
    """Command ``password``: answer ``PasswordRequired``. Its repr hides the password."""

    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Command ``cancel``: end the live attempt."""


@dataclass(frozen=True, slots=True)
class Logout:
    """Command ``logout``: log the authorized session out (the shell does it first)."""


@dataclass(frozen=True, slots=True)
class Validate:
    """Command ``validate``: check the authorized session (the shell calls ``get_me``)."""


Command = Start | Password | Cancel | Logout | Validate


@dataclass(frozen=True, slots=True)
class TokenExported:
    """The export returned a plain token: a (new) QR to show."""

    url: str
    expires_at: datetime
    dc_id: int


@dataclass(frozen=True, slots=True)
class ScanSeen:
    """``updateLoginToken`` arrived."""


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The client is authorized as ``user_id``; ``session_fingerprint`` names its session."""

    user_id: int
    dc_id: int
    session_fingerprint: str


@dataclass(frozen=True, slots=True)
class Migrating:
    """The export answered ``LoginTokenMigrateTo``: the shell imports on ``dc_id``."""

    dc_id: int


@dataclass(frozen=True, slots=True)
class TokenExpiredOnImport:
    """The import came too late (the shell re-exports)."""


@dataclass(frozen=True, slots=True)
class PasswordNeededSeen:
    """``SESSION_PASSWORD_NEEDED``, with the account's hint."""

    hint: str = ""


@dataclass(frozen=True, slots=True)
class PasswordWrong:
    """``auth.checkPassword`` refused the password."""


@dataclass(frozen=True, slots=True)
class FloodWait:
    """Telegram asked to wait ``seconds`` before ``method``; ``random`` is U[0, 1) for jitter."""

    seconds: int
    method: str
    random: float


@dataclass(frozen=True, slots=True)
class DeadlineReached:
    """The shell's timer fired at (or after) the attempt's deadline."""


@dataclass(frozen=True, slots=True)
class TokenRefused:
    """The login token is invalid or already used."""


@dataclass(frozen=True, slots=True)
class ConfigRefused:
    """Telegram refused the service's configuration (``API_ID_INVALID``)."""


@dataclass(frozen=True, slots=True)
class TelegramDown:
    """Telegram could not be reached."""


@dataclass(frozen=True, slots=True)
class SessionRevoked:
    """The stored session is dead (``get_me`` or a restored client says so)."""


@dataclass(frozen=True, slots=True)
class SessionLost:
    """A resumed 2FA attempt found no pre-auth session in the vault."""


Observation = (
    TokenExported
    | ScanSeen
    | Succeeded
    | Migrating
    | TokenExpiredOnImport
    | PasswordNeededSeen
    | PasswordWrong
    | FloodWait
    | DeadlineReached
    | TokenRefused
    | ConfigRefused
    | TelegramDown
    | SessionRevoked
    | SessionLost
)
Input = Command | Observation


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``decide`` answers: events to append, or a rejection ``error`` code."""

    events: tuple[Event, ...] = ()
    error: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Env(TypedDict):
    tenant: str
    attempt: int
    at: datetime
    trace: str | None


def _reject(code: str, message: str) -> Decision:
    return Decision(error=code, message=message)


def _fail_reason(observation: Observation) -> str:
    match observation:
        case TokenRefused():
            return "token_invalid"
        case ConfigRefused():
            return "api_id_invalid"
        case TelegramDown():
            return "telegram_unavailable"
        case SessionRevoked():
            return "session_revoked"
        case SessionLost():
            return "session_lost"
    return "telegram_unavailable"


# --- decide --------------------------------------------------------------------------------


def decide(
    state: LoginState,
    given: Input,
    now: datetime,
    policy: Policy,
    *,
    trace: str | None = None,
) -> Decision:
    """The events ``given`` causes in ``state`` at ``now``, or why it is refused.

    Observations that no longer fit (a late answer for an ended attempt) give no events and no
    error. Commands that do not fit give ``wrong_state``.
    """
    env = _Env(tenant=state.tenant, attempt=state.attempt, at=now, trace=trace)
    match given:
        case Start():
            return _decide_start(state, given, now, policy, trace)
        case Password():
            if state.status != "password_required":
                return _reject("wrong_state", f"no password is expected ({state.status})")
            return Decision()
        case Cancel():
            if not state.live:
                return _reject("wrong_state", f"nothing to cancel ({state.status})")
            return Decision((LoginCancelled(**env),))
        case Logout():
            if state.status != "authorized":
                return _reject("wrong_state", f"not authorized ({state.status})")
            return Decision((LoggedOut(**env, reason="command"),))
        case Validate():
            if state.status != "authorized":
                return _reject("wrong_state", f"not authorized ({state.status})")
            return Decision()
        case SessionRevoked() if state.status == "authorized":
            return Decision((LoggedOut(**env, reason="revoked"),))
    if not state.live:
        return Decision()
    match given:
        case TokenExported() if state.status != "password_required":
            return Decision(
                (QrIssued(**env, url=given.url, expires_at=given.expires_at, dc_id=given.dc_id),)
            )
        case ScanSeen() if state.status == "pending":
            return Decision((Scanned(**env),))
        case Succeeded():
            if state.expected_user_id is not None and given.user_id != state.expected_user_id:
                return Decision((LoginFailed(**env, reason="ownership_mismatch"),))
            return Decision(
                (
                    Authorized(
                        **env,
                        user_id=given.user_id,
                        dc_id=given.dc_id,
                        session_fingerprint=given.session_fingerprint,
                    ),
                )
            )
        case PasswordNeededSeen() if state.status != "password_required":
            return Decision((PasswordRequired(**env, hint=given.hint),))
        case PasswordWrong() if state.status == "password_required":
            left = (policy.password_tries if state.tries_left is None else state.tries_left) - 1
            rejected = PasswordRejected(**env, tries_left=max(left, 0))
            if left > 0:
                return Decision((rejected,))
            return Decision((rejected, LoginFailed(**env, reason="password_attempts")))
        case FloodWait():
            return _decide_flood(state, given, now, policy, env)
        case DeadlineReached() if state.deadline is not None and now >= state.deadline:
            return Decision((Expired(**env),))
        case TokenRefused() | ConfigRefused() | TelegramDown() | SessionRevoked() | SessionLost():
            return Decision((LoginFailed(**env, reason=_fail_reason(given)),))
    return Decision()


def _decide_start(
    state: LoginState, start: Start, now: datetime, policy: Policy, trace: str | None
) -> Decision:
    if start.ttl_s is not None and not 1 <= start.ttl_s <= MAX_TTL_S:
        return _reject("invalid_request", f"ttl_s must be within 1..{MAX_TTL_S}")
    if not start.force and (state.live or state.status == "authorized"):
        return Decision()  # idempotent: the reply names the active attempt or "authorized"
    env = _Env(tenant=state.tenant, attempt=state.attempt, at=now, trace=trace)
    ended: tuple[Event, ...] = ()
    if state.live:
        ended = (LoginCancelled(**env),)
    elif state.status == "authorized":
        ended = (LoggedOut(**env, reason="command"),)
    ttl = policy.qr_ttl_s if start.ttl_s is None else min(start.ttl_s, policy.qr_ttl_s)
    started = LoginStarted(
        tenant=state.tenant,
        attempt=state.attempt + 1,
        at=now,
        trace=trace,
        expected_user_id=start.expected_user_id,
        deadline=now + timedelta(seconds=ttl),
    )
    return Decision((*ended, started))


def _decide_flood(
    state: LoginState, flood: FloodWait, now: datetime, policy: Policy, env: _Env
) -> Decision:
    low, high = policy.flood_jitter
    jitter = low + (high - low) * min(max(flood.random, 0.0), 1.0)
    retry_at = now + timedelta(seconds=flood.seconds * (1.0 + jitter))
    fits = state.deadline is not None and retry_at <= state.deadline
    if flood.seconds <= policy.flood_max_wait_s and fits:
        return Decision(
            (FloodWaited(**env, seconds=flood.seconds, method=flood.method, retry_at=retry_at),)
        )
    return Decision(
        (
            FloodWaited(**env, seconds=flood.seconds, method=flood.method, retry_at=None),
            LoginFailed(**env, reason="flood_wait"),
        )
    )


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
