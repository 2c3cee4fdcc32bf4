"""What the page shows, folded from the log: states, when the page starts a login, and that
an event that does not verify changes nothing but quarantines the view."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from actors.gateway.page import PageView
from actors.gateway.page._view import apply_record, failure_text, should_start
from events import LoginFailed, PasswordRejected, PasswordRequired, Scanned

from ._fakes import T0, FakeLog, authorized, expired, qr, started


def fold(log: FakeLog, tenant: str = "alice") -> PageView:
    view = PageView.empty(tenant)
    for record in log.records.get(tenant, []):
        view = apply_record(view, record, verified=record.mac != "forged")
    return view


def test_a_fresh_tenant_is_idle_and_gets_a_login() -> None:
    view = PageView.empty("alice")
    assert view.state == "idle"
    assert should_start(view, T0)


def test_states_follow_the_events() -> None:
    """pending -> scanned -> password_required (hint, tries) -> authorized (user)."""
    log = FakeLog()
    log.add(started("alice"))
    assert fold(log).state == "pending"
    log.add(qr("alice"))
    assert fold(log).login.qr_url == "tg://login?token=dG9rZW41"
    log.add(Scanned(tenant="alice", attempt=1, at=T0))
    assert fold(log).state == "scanned"
    log.add(PasswordRequired(tenant="alice", attempt=1, at=T0, hint="pet's name"))
    log.add(PasswordRejected(tenant="alice", attempt=1, at=T0, tries_left=4))
    view = fold(log)
    assert (view.state, view.hint, view.login.tries_left) == ("password_required", "pet's name", 4)
    assert not should_start(view, T0)
    log.add(authorized("alice", 77))
    view = fold(log)
    assert (view.state, view.login.user_id) == ("authorized", 77)
    assert not should_start(view, T0 + timedelta(hours=1))


def test_an_ended_attempt_restarts_only_for_a_newer_link() -> None:
    """After an expiry a link issued later starts a login; the link that saw it end does not
    (its page shows the outcome and the "new code" button)."""
    log = FakeLog()
    log.add(started("alice", at=T0))
    log.add(expired("alice", at=T0 + timedelta(seconds=600)))
    view = fold(log)
    assert view.state == "expired"
    assert not should_start(view, T0 - timedelta(seconds=1))
    assert should_start(view, T0 + timedelta(seconds=1))


def test_failure_reasons_are_plain_words() -> None:
    log = FakeLog()
    log.add(started("alice"))
    log.add(LoginFailed(tenant="alice", attempt=1, at=T0, reason="ownership_mismatch"))
    view = fold(log)
    assert view.state == "failed"
    assert failure_text(view.reason) == (
        "A different Telegram account than the expected one was used."
    )
    assert failure_text("something_new") == "The login did not succeed."
    log.add(started("alice", 2))
    assert fold(log).reason is None


def test_an_unverified_event_quarantines_and_changes_nothing() -> None:
    """A forged ``Authorized`` does not show as logged in; the tenant gets no new login."""
    log = FakeLog()
    log.add(started("alice"))
    log.add(authorized("alice"), mac="forged")
    view = fold(log)
    assert view.state == "quarantined"
    assert view.login.status == "pending"
    assert not should_start(view, T0 + timedelta(hours=1))
    log.add(authorized("alice"))
    assert fold(log).login.status == "pending"


def test_old_and_foreign_records_are_ignored() -> None:
    log = FakeLog()
    first = log.add(started("alice"))
    view = apply_record(PageView.empty("alice"), first, verified=True)
    assert apply_record(view, first, verified=True) is view
    other = log.add(started("bob"))
    assert apply_record(view, replace(other), verified=True).quarantined
