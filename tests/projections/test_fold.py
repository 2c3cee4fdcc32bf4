"""The store's set-based fold: hand-computed rows, the reference model, and batching."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events import ActorRestarted, Event, FloodWaited, QrIssued, StoredMessage
from projections import ProjectionStore
from tests.projections._histories import (
    T0,
    Script,
    arbitrary_histories,
    as_stored,
    attempt_events,
    histories,
    tenant_events,
)
from tests.projections.model import Fold, LoginAttempt, TenantStatus

ATTEMPT_COLUMNS = [f.name for f in dataclasses.fields(LoginAttempt)]


@contextmanager
def projected(events: list[Event]) -> Iterator[ProjectionStore]:
    store = ProjectionStore.open(":memory:")
    try:
        store.apply_batch(as_stored(events))
        yield store
    finally:
        store.close()


def attempt(store: ProjectionStore, tenant: str, number: int) -> dict[str, Any]:
    for row in store.dump()["login_attempts"]:
        if row[:2] == (tenant, number):
            return dict(zip(ATTEMPT_COLUMNS, row, strict=True))
    raise AssertionError(f"no attempt {tenant} {number}")


def test_authorized_login_gives_status_and_attempt_figures() -> None:
    """A plain login ends authorized with its scan and authorize times measured from start."""
    events = attempt_events("acme", 1, T0, Script("authorized", qrs=2, floods=1, gap=5))
    with projected(events) as store:
        [status] = store.status("acme")
        row = attempt(store, "acme", 1)
    assert status["state"] == "authorized"
    assert status["user_id"] == 1001
    assert status["qr_url"] is None
    assert (status["attempts"], status["qr_issued"], status["flood_waits"]) == (1, 2, 1)
    assert status["updated_at"] == events[-1].at
    assert row["outcome"] == "authorized"
    assert row["qr_count"] == 2
    assert row["flood_wait_seconds"] == 3
    assert row["time_to_scan_s"] == 20.0  # started, 2 QRs, 1 flood wait, then scanned: 4 gaps
    assert row["time_to_authorize_s"] == 25.0
    assert row["first_qr_at"] == (T0 + timedelta(seconds=5)).replace(tzinfo=None)


def test_live_attempt_shows_the_current_qr() -> None:
    """While pending, the status carries the latest QR url and its expiry."""
    events = attempt_events("acme", 1, T0, Script("live", qrs=3))
    with projected(events) as store:
        [status] = store.status("acme")
        row = attempt(store, "acme", 1)
    last_qr = events[-1]
    assert isinstance(last_qr, QrIssued)
    assert status["state"] == "pending"
    assert status["qr_url"] == last_qr.url
    assert status["qr_expires_at"] == last_qr.expires_at
    assert status["dc_id"] == 2
    assert row["outcome"] is None


def test_the_last_status_event_names_the_state_across_batches() -> None:
    """A batch without a status event keeps the stored state; the next status event names the
    state whatever came before, batches apart (even a token during 2FA, which ``decide`` never
    emits: the status table is in ``actors.login.evolve``'s docstring)."""
    events = attempt_events("acme", 1, T0, Script("password"))[:-1]  # stop before Authorized
    flood = FloodWaited(tenant="acme", attempt=1, at=T0 + timedelta(minutes=4), seconds=3,
                        method="m")  # fmt: skip
    refresh = QrIssued(tenant="acme", attempt=1, at=T0 + timedelta(minutes=5),
                       url="tg://login?token=late", expires_at=T0 + timedelta(minutes=6),
                       dc_id=2)  # fmt: skip
    items = as_stored([*events, flood, refresh])
    seen = []
    store = ProjectionStore.open(":memory:")
    try:
        for batch in (items[:-2], items[-2:-1], items[-1:]):
            store.apply_batch(batch)
            [status] = store.status("acme")
            seen.append((status["state"], status["qr_url"]))
    finally:
        store.close()
    assert [state for state, _ in seen] == ["password_required", "password_required", "pending"]
    assert seen[-1][1] == "tg://login?token=late"


def test_crash_is_a_failure_and_restarts_count() -> None:
    """LoginFailed(crashed) ends the attempt as failed; every ActorRestarted is counted."""
    with projected(attempt_events("acme", 1, T0, Script("crashed", restarts=2))) as store:
        [status] = store.status("acme")
        row = attempt(store, "acme", 1)
    assert (row["outcome"], row["fail_reason"], row["restarts"]) == ("failed", "crashed", 2)
    assert (status["state"], status["restarts"]) == ("failed", 2)


def test_a_second_ending_does_not_change_the_outcome() -> None:
    """The first terminal event decides the outcome; a later one only moves the status."""
    events = attempt_events("acme", 1, T0, Script("expired"))
    late = ActorRestarted(tenant="acme", attempt=1, at=T0 + timedelta(hours=1), restart=1,
                          delay_s=1.0, error="late")  # fmt: skip
    with projected([*events, late]) as store:
        assert attempt(store, "acme", 1)["outcome"] == "expired"
        assert store.status("acme")[0]["last_event"] == "ActorRestarted"


def test_counts_per_minute_and_type() -> None:
    """Each event adds one to its (minute, tenant, type) count."""
    with projected(tenant_events("acme", [Script("live", qrs=3, gap=30)])) as store:
        counts = store.dump()["event_counts"]
    minute = T0.replace(tzinfo=None)
    assert (minute, "acme", "LoginStarted", 1) in counts
    assert sum(row[3] for row in counts if row[2] == "QrIssued") == 3


def _naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _rows(items: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(_naive(v) for v in dataclasses.astuple(row)) for row in items)


def model_tables(events: list[Event]) -> dict[str, list[tuple[Any, ...]]]:
    """The reference model's rows, in the store's ``dump`` layout."""
    fold = Fold()
    for seq, event in enumerate(events, start=1):
        fold.apply(seq, event)
    status: list[TenantStatus] = list(fold.status.values())
    counts = sorted((_naive(m), t, k, n) for (m, t, k), n in fold.counts.items())
    return {
        "tenant_status": _rows(status),
        "login_attempts": _rows(fold.attempts.values()),
        "event_counts": counts,
    }


@settings(max_examples=60, deadline=None)
@given(history=st.one_of(arbitrary_histories(), histories()))
def test_sql_fold_equals_the_reference_model(history: list[Event]) -> None:
    """On any history, in one batch, the SQL gives exactly the rows of the Python model."""
    with projected(history) as store:
        dump = store.dump()
    got = {name: sorted(dump[name]) for name in ("tenant_status", "login_attempts", "event_counts")}
    assert got == model_tables(history)


def _apply_in_chunks(items: list[StoredMessage], sizes: list[int]) -> Any:
    store = ProjectionStore.open(":memory:")
    try:
        at = 0
        cycle = iter(sizes * (len(items) + 1))
        while at < len(items):
            size = next(cycle)
            store.apply_batch(items[at : at + size])
            at += size
        return store.dump()
    finally:
        store.close()


@settings(max_examples=15, deadline=None)
@given(history=st.one_of(arbitrary_histories(), histories()),
       sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
       garbage_at=st.integers(0, 200))  # fmt: skip
def test_incremental_equals_one_batch(
    history: list[Event], sizes: list[int], garbage_at: int
) -> None:
    """Folding in batches of any sizes (re-applying old ones too) equals one whole fold."""
    items = as_stored(history)
    at = min(garbage_at, len(items))
    items.insert(at, StoredMessage(0, "tgqr.evt.t0", b"{", ""))
    items = [msgspec.structs.replace(item, seq=i + 1) for i, item in enumerate(items)]
    whole = _apply_in_chunks(items, [len(items)])
    # A replayed overlap (items at or below the checkpoint) must be skipped.
    replayed = items[: len(items) // 2] + items
    chunked = _apply_in_chunks(replayed, sizes)
    assert chunked == whole
    assert len(whole["dead_letters"]) == 1


def test_status_shows_the_proxy_label_of_the_last_start() -> None:
    """``proxy`` is the label of the last LoginStarted: kept through the attempt's end and a
    logout, replaced by the next start, null again after a start without one."""
    label = "socks5://127.0.0.1:1080 #ab12cd34ef56"
    first = attempt_events("acme", 1, T0, Script("authorized", logout=True))
    first[0] = msgspec.structs.replace(first[0], proxy=label)
    second = attempt_events("acme", 2, T0 + timedelta(seconds=100), Script("live"))
    with projected(first) as store:
        [status] = store.status("acme")
        assert status["proxy"] == label
        store.apply_batch(as_stored(first + second))
        [status] = store.status("acme")
    assert status["attempt"] == 2
    assert status["proxy"] is None
