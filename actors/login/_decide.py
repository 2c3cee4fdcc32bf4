"""``decide``: the events a command or an observation causes, or why it is refused.

Every login policy lives here: the one service-wide TTL, the result switch, 2FA tries,
flood waits, ownership and idempotent ``start``. Pure: the time and the randomness are given.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypedDict

from events import (
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
from events import SessionRevoked as RevokedEvent

from ._inputs import (
    Cancel,
    ConfigRefused,
    DeadlineReached,
    Decision,
    FloodWait,
    Input,
    Lease,
    LeaseDue,
    Logout,
    Observation,
    Password,
    PasswordNeededSeen,
    PasswordWrong,
    ProxyDown,
    ProxyRefused,
    Release,
    Renew,
    ScanSeen,
    SessionLost,
    SessionRevoked,
    Start,
    Succeeded,
    TelegramDown,
    TokenExported,
    TokenRefused,
    Validate,
)
from ._leases import decide_lease, end_lease
from ._state import MAX_TTL_S, LoginState, Policy

__all__ = ["decide"]


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
        case ProxyDown():
            return "proxy_unreachable"
        case ProxyRefused():
            return "proxy_auth_failed"
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
            ended = end_lease(state, now, "logout", trace)  # the lease ends first
            return Decision((*ended, LoggedOut(**env, reason="command")))
        case Validate():
            if state.status != "authorized":
                return _reject("wrong_state", f"not authorized ({state.status})")
            return Decision()  # the shell checks the session unless it is leased
        case SessionRevoked() if state.status == "authorized":
            # The lease ends first, then what was noticed, then the end of the session.
            ended = end_lease(state, now, "revoked", trace)
            revoked = RevokedEvent(**env, noticed_by=given.noticed_by)
            return Decision((*ended, revoked, LoggedOut(**env, reason="revoked")))
        case Lease() | Renew() | Release() | LeaseDue():
            return decide_lease(state, given, now, trace=trace)
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
        case (
            TokenRefused()
            | ConfigRefused()
            | TelegramDown()
            | SessionRevoked()
            | SessionLost()
            | ProxyDown()
            | ProxyRefused()
        ):
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
        ended = (*end_lease(state, now, "logout", trace), LoggedOut(**env, reason="command"))
    ttl = policy.qr_ttl_s if start.ttl_s is None else min(start.ttl_s, policy.qr_ttl_s)
    started = LoginStarted(
        tenant=state.tenant,
        attempt=state.attempt + 1,
        at=now,
        trace=trace,
        expected_user_id=start.expected_user_id,
        deadline=now + timedelta(seconds=ttl),
        device=start.device,
        proxy=start.proxy_label,
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
