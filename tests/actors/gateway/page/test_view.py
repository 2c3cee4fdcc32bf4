"""What the page shows, folded from the log: states, when it offers a new login, the ownership
expectation it keeps, and that a message that is not the chain's next link (a bad MAC, or a
genuine event replayed) changes nothing but quarantines the view."""

from __future__ import annotations

import pytest

from actors.gateway.page import PageView
from actors.gateway.page._view import apply_item, failure_text, view_of
from events import LoginFailed, PasswordRejected, PasswordRequired, QuarantineLifted, Scanned

from ._fakes import CHAIN_KEY, T0, FakeLog, authorized, expired, qr, started

pytestmark = pytest.mark.anyio


async def fold(log: FakeLog, tenant: str = "alice") -> PageView:
    """The view as the page loads it (the log's ``load_tenant``)."""
    return view_of(await log.load_tenant(tenant))


def live(log: FakeLog, tenant: str = "alice") -> PageView:
    """The view as the page's live feed folds the same messages, one at a time."""
    view = PageView.empty(tenant)
    for record in log.records.get(tenant, []):
        view = apply_item(view, record, CHAIN_KEY)
    return view


async def test_a_fresh_tenant_is_idle_and_offers_a_login() -> None:
    view = await fold(FakeLog())
    assert view.state == "idle"
    assert view.startable


async def test_states_follow_the_events() -> None:
    """pending -> scanned -> password_required (hint, tries) -> authorized (user)."""
    log = FakeLog()
    log.add(started("alice"))
    assert (await fold(log)).state == "pending"
    log.add(qr("alice"))
    assert (await fold(log)).login.qr_url == "tg://login?token=dG9rZW41"
    log.add(Scanned(tenant="alice", attempt=1, at=T0))
    assert (await fold(log)).state == "scanned"
    log.add(PasswordRequired(tenant="alice", attempt=1, at=T0, hint="pet's name"))
    log.add(PasswordRejected(tenant="alice", attempt=1, at=T0, tries_left=4))
    view = await fold(log)
    assert (view.state, view.hint, view.login.tries_left) == ("password_required", "pet's name", 4)
    assert not view.startable
    log.add(authorized("alice", 77))
    view = await fold(log)
    assert (view.state, view.login.user_id) == ("authorized", 77)
    assert not view.startable
    assert live(log) == view


async def test_an_ended_attempt_offers_a_new_one() -> None:
    log = FakeLog()
    log.add(started("alice", at=T0))
    log.add(expired("alice"))
    view = await fold(log)
    assert view.state == "expired"
    assert view.startable


async def test_the_last_ownership_expectation_is_kept() -> None:
    """The expectation of the tenant's last ``LoginStarted``, whatever happened after it."""
    log = FakeLog()
    log.add(started("alice", expected_user_id=1001))
    log.add(expired("alice"))
    assert (await fold(log)).expected_user_id == 1001
    assert live(log).expected_user_id == 1001
    log.add(started("alice", 2))
    assert (await fold(log)).expected_user_id is None


async def test_failure_reasons_are_plain_words() -> None:
    log = FakeLog()
    log.add(started("alice"))
    log.add(LoginFailed(tenant="alice", attempt=1, at=T0, reason="ownership_mismatch"))
    view = await fold(log)
    assert view.state == "failed"
    assert failure_text(view.reason) == (
        "A different Telegram account than the expected one was used."
    )
    assert failure_text("something_new") == "The login did not succeed."
    log.add(started("alice", 2))
    assert (await fold(log)).reason is None


async def test_a_bad_mac_quarantines_and_changes_nothing() -> None:
    """A forged ``Authorized`` does not show as logged in; the page offers no new login."""
    log = FakeLog()
    log.add(started("alice"))
    log.add(authorized("alice"), mac="0" * 64)
    for view in (await fold(log), live(log)):
        assert view.state == "quarantined"
        assert view.login.status == "pending"
        assert not view.startable


async def test_a_replayed_genuine_event_quarantines() -> None:
    """A genuine ``Authorized`` stored again later verifies its MAC but not its chain link."""
    log = FakeLog()
    log.add(started("alice"))
    genuine = log.add(authorized("alice", 4242))
    log.add(started("alice", 2))
    log.store("alice", genuine.data, genuine.mac)  # the same bytes, the same MAC
    for view in (await fold(log), live(log)):
        assert view.state == "quarantined"
        assert view.login.status == "pending"


async def test_a_lifted_quarantine_shows_the_chain_again() -> None:
    log = FakeLog()
    log.add(started("alice"))
    bad = log.add(authorized("alice"), mac="0" * 64)
    log.add(QuarantineLifted(tenant="alice", attempt=1, at=T0, sequences=(bad.seq,)))
    for view in (await fold(log), live(log)):
        assert view.state == "pending"


def test_old_and_foreign_records_are_ignored() -> None:
    log = FakeLog()
    first = log.add(started("alice"))
    view = apply_item(PageView.empty("alice"), first, CHAIN_KEY)
    assert apply_item(view, first, CHAIN_KEY) is view
    other = log.add(started("bob"))
    assert apply_item(view, other, CHAIN_KEY).quarantined
