"""What the end user's page shows, folded from the tenant's verified chain (pure).

The status comes from the login aggregate's own ``evolve`` (one definition of the states);
the page adds what only it needs: the 2FA hint, the failure reason, when the attempt started,
the ownership expectation its own logins must keep, and the messages that failed verification.
A message is folded only when it is the next link of the tenant's chain (its MAC verifies under
the chain key and its ``prev`` is the MAC of the last folded event: :func:`events.check_tenant`,
the rule every reader of the log applies). Any other message (forged, altered, or a genuine
event replayed out of place) marks the tenant ``quarantined`` until a verified
``QuarantineLifted`` names it: nothing is shown but "on hold", and the page sends no command.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from actors.login import LIVE, LoginState, evolve
from events import (
    ChainKey,
    Head,
    LoggedOut,
    LoginFailed,
    LoginStarted,
    PasswordRequired,
    QuarantineLifted,
    Record,
    TenantLog,
    Undecodable,
    check_tenant,
)

from ._texts import TEXTS

__all__ = ["ENDED", "NOTICES", "PageView", "apply_item", "failure_text", "view_of"]

ENDED: Final = frozenset({"idle", "expired", "failed", "cancelled", "logged_out"})
"""States in which the page offers a button that starts a new attempt."""

NOTICES: Final = frozenset(
    {
        "rate_limited",
        "wrong_state",
        "unavailable",
        "tenant_quarantined",
        "form_expired",
        "empty_password",
        "invalid_request",
    }
)
"""The only notices a ``?n=`` query may select (their texts are ``TEXTS[lang]["n:<code>"]``;
nothing from the URL is ever echoed)."""


def failure_text(reason: str | None, lang: str = "en") -> str:
    """The failure reason in plain words (a stable code never reaches the user as-is)."""
    if reason is None:
        return ""
    texts = TEXTS.get(lang, TEXTS["en"])
    return texts.get(f"r:{reason}", texts["r:"])


@dataclass(frozen=True, slots=True)
class PageView:
    """One tenant's login as the page shows it.

    ``seq``: the last stream sequence seen (bad messages included); ``mac``: the MAC of the last
    folded event, which the next one must name as its ``prev``; ``bad``: the sequences of
    messages that are not part of the chain and were not released.
    """

    login: LoginState
    seq: int = 0
    mac: str = ""
    hint: str = ""
    reason: str | None = None
    started_at: datetime | None = None
    expected_user_id: int | None = None
    """The ``expected_user_id`` of the tenant's last ``LoginStarted``: a login the page starts
    keeps it, so a new attempt never drops the ownership check an app asked for."""
    bad: frozenset[int] = frozenset()

    @classmethod
    def empty(cls, tenant: str) -> PageView:
        return cls(LoginState(tenant=tenant))

    @property
    def quarantined(self) -> bool:
        return bool(self.bad)

    @property
    def state(self) -> str:
        """The name ``<body data-state>`` carries: the tenant's status, or ``quarantined``."""
        return "quarantined" if self.quarantined else self.login.status

    @property
    def live(self) -> bool:
        return not self.quarantined and self.login.status in LIVE

    @property
    def startable(self) -> bool:
        """Whether the page offers to start a new attempt (on the user's click only)."""
        return not self.quarantined and self.login.status in ENDED


def _fold(view: PageView, record: Record) -> PageView:
    """``view`` after one verified event that links to it."""
    event = record.event
    login = evolve(view.login, event)
    hint, reason, started_at = view.hint, view.reason, view.started_at
    expected, bad = view.expected_user_id, view.bad
    match event:
        case LoginStarted():
            hint, reason, started_at = "", None, event.at
            expected = event.expected_user_id
        case PasswordRequired():
            hint = event.hint
        case LoginFailed() | LoggedOut():
            reason = event.reason
        case QuarantineLifted():
            bad = bad - frozenset(event.sequences)
        case _:
            pass
    return replace(
        view,
        login=login,
        seq=max(view.seq, record.seq),
        mac=record.mac,
        hint=hint,
        reason=reason,
        started_at=started_at,
        expected_user_id=expected,
        bad=bad,
    )


def view_of(log: TenantLog) -> PageView:
    """The page of a tenant's chain as :meth:`events.EventLog.load_tenant` checked it."""
    view = PageView.empty(log.tenant)
    for record in log.records:
        view = _fold(view, record)
    return replace(view, seq=log.head.seq, mac=log.head.mac, bad=frozenset(b.seq for b in log.bad))


def apply_item(view: PageView, item: Record | Undecodable, key: ChainKey) -> PageView:
    """``view`` after the next stored message of the tenant: folded if it is the chain's next
    link, else recorded as bad (quarantined). One already seen (same sequence) is ignored."""
    if item.seq <= view.seq:
        return view
    checked = check_tenant(view.login.tenant, [item], key, after=Head(0, view.mac))
    if checked.bad or not checked.records:
        return replace(view, seq=item.seq, bad=view.bad | {item.seq})
    return _fold(view, checked.records[0])
