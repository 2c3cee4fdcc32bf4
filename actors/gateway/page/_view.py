"""What the end user's page shows, folded from the tenant's verified events (pure).

The status comes from the login aggregate's own ``evolve`` (one definition of the states);
the page adds what only it needs: the 2FA hint, the failure reason, when the attempt started,
and whether a message failed verification (the tenant is then ``quarantined``: nothing after
it is shown, and the page sends no command).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from actors.login import LIVE, LoginState, evolve
from events import LoggedOut, LoginFailed, LoginStarted, PasswordRequired, Record

__all__ = ["ENDED", "NOTICES", "PageView", "apply_record", "failure_text", "should_start"]

ENDED: Final = frozenset({"idle", "expired", "failed", "cancelled", "logged_out"})
"""States in which opening a fresh link starts a new attempt."""

_REASONS: Final[dict[str, str]] = {
    "ownership_mismatch": "A different Telegram account than the expected one was used.",
    "flood_wait": "Telegram asked us to wait longer than this login may take.",
    "password_attempts": "The two-step verification password was wrong too many times.",
    "crashed": "Something went wrong on our side.",
    "api_id_invalid": "This service's Telegram credentials were refused.",
    "token_invalid": "Telegram refused the login code.",
    "telegram_unavailable": "Telegram could not be reached.",
    "command": "The session was logged out.",
    "revoked": "The session was ended from a Telegram app.",
}

NOTICES: Final[dict[str, str]] = {
    "rate_limited": "Too many tries in a short time. Wait a minute, then try again.",
    "wrong_state": "That step is already over; this page shows where the login is now.",
    "unavailable": "The service is busy right now. Try again in a moment.",
    "tenant_quarantined": "This login is on hold for a security check.",
    "form_expired": "The form was too old. Please try again.",
    "empty_password": "Enter your password.",
    "invalid_request": "That did not look right. Please try again.",
}
"""The only texts a ``?n=`` query may select (nothing from the URL is ever echoed)."""


def failure_text(reason: str | None) -> str:
    """The failure reason in plain words (a stable code never reaches the user as-is)."""
    if reason is None:
        return ""
    return _REASONS.get(reason, "The login did not succeed.")


@dataclass(frozen=True, slots=True)
class PageView:
    """One tenant's login as the page shows it. ``seq``: the last stream sequence folded."""

    login: LoginState
    seq: int = 0
    hint: str = ""
    reason: str | None = None
    started_at: datetime | None = None
    quarantined: bool = False

    @classmethod
    def empty(cls, tenant: str) -> PageView:
        return cls(LoginState(tenant=tenant))

    @property
    def state(self) -> str:
        """The name ``<body data-state>`` carries: the tenant's status, or ``quarantined``."""
        return "quarantined" if self.quarantined else self.login.status

    @property
    def live(self) -> bool:
        return not self.quarantined and self.login.status in LIVE


def apply_record(view: PageView, record: Record, *, verified: bool) -> PageView:
    """``view`` after one stored event. An event that failed verification changes nothing
    but marks the view quarantined; one already folded (same stream sequence) is ignored."""
    if record.seq <= view.seq:
        return view
    if not verified or record.tenant != view.login.tenant:
        return replace(view, seq=record.seq, quarantined=True)
    if view.quarantined:
        return replace(view, seq=record.seq)
    event = record.event
    login = evolve(view.login, event)
    hint, reason, started_at = view.hint, view.reason, view.started_at
    match event:
        case LoginStarted():
            hint, reason, started_at = "", None, event.at
        case PasswordRequired():
            hint = event.hint
        case LoginFailed() | LoggedOut():
            reason = event.reason
        case _:
            pass
    return replace(
        view, login=login, seq=record.seq, hint=hint, reason=reason, started_at=started_at
    )


def should_start(view: PageView, link_issued_at: datetime) -> bool:
    """Whether opening the page starts a login: none is active, the tenant is not authorized
    or quarantined, and no attempt has started since the link was issued (so a reload after
    an expiry shows the outcome and its "new code" button instead of a silent new attempt)."""
    if view.quarantined or view.login.status not in ENDED:
        return False
    return view.started_at is None or view.started_at < link_issued_at
