"""Leases in the projection: the status view's holder, ``session_leases`` and the metrics."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    Authorized,
    Event,
    LoggedOut,
    LoginStarted,
    SessionLeased,
    SessionReleased,
)
from projections import ProjectionStore
from tests.projections._histories import T0, arbitrary_histories, as_stored, histories
from tests.projections.model import Fold

ENV: dict[str, Any] = {"tenant": "acme", "attempt": 1}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def leased(second: float, lease_id: str, fence: int, ttl: float = 300) -> SessionLeased:
    return SessionLeased(
        **ENV, at=at(second), holder=f"h-{lease_id}", lease_id=lease_id, fence=fence,
        expires_at=at(second + ttl),
    )  # fmt: skip


def released(second: float, lease_id: str, reason: str) -> SessionReleased:
    return SessionReleased(**ENV, at=at(second), lease_id=lease_id, reason=reason)


LOGGED_IN: list[Event] = [
    LoginStarted(**ENV, at=at(0), deadline=at(600)),
    Authorized(**ENV, at=at(5), user_id=7, dc_id=2, session_fingerprint="f"),
]
HISTORY: list[Event] = [
    *LOGGED_IN,
    leased(10, "L1", 2),
    leased(100, "L1", 2),  # renewed (as logs did before renewals left the log)
    released(500, "L1", "expired"),
    leased(600, "L2", 9),
    released(700, "L2", "revoked"),
    LoggedOut(**ENV, at=at(700), reason="revoked"),
    leased(800, "L3", 12),  # (a log may hold anything; the fold does not judge)
]


def fold_store(events: list[Event], sizes: list[int]) -> ProjectionStore:
    store = ProjectionStore.open(":memory:")
    items, done = as_stored(events), 0
    for size in sizes * (len(items) + 1):
        if done >= len(items):
            break
        store.apply_batch(items[done : done + size])
        done += size
    return store


def test_status_shows_the_holder_until_the_lease_ends() -> None:
    """lease_holder/lease_expires_at follow SessionLeased (an old log's repeated grant moves
    the expiry) and are cleared by SessionReleased and LoggedOut."""
    store = fold_store(HISTORY[:4], [10])
    try:
        [row] = store.status("acme")
        assert (row["lease_holder"], row["lease_expires_at"]) == ("h-L1", at(400))
        store.apply_batch(as_stored(HISTORY, first_seq=1)[4:5])
        [row] = store.status("acme")
        assert (row["state"], row["lease_holder"], row["lease_expires_at"]) == (
            "authorized",
            None,
            None,
        )
    finally:
        store.close()


def test_one_row_per_lease_with_its_grant_renewals_and_end() -> None:
    """session_leases: holder, fence, first grant, last expiry, grants, first ending."""
    store = fold_store(HISTORY, [3])
    try:
        rows = store.dump()["session_leases"]
    finally:
        store.close()
    naive = {r[1]: r for r in rows}
    l1 = naive["L1"]
    assert l1[2:4] == ("h-L1", 2)
    assert l1[6:] == (2, at(500).replace(tzinfo=None), "expired")
    assert naive["L2"][-1] == "revoked"
    assert naive["L3"][-2:] == (None, None)


def test_metrics_count_leases_in_the_window() -> None:
    """leases granted in the window (not renewals), those that expired and were revoked."""
    store = fold_store(HISTORY, [100])
    try:
        everything = store.metrics(now=at(900), window_s=3600)
        late = store.metrics(now=at(900), window_s=250)  # from t=650 on
    finally:
        store.close()
    figures = everything["global"]
    assert (figures["leases"], figures["leases_expired"], figures["leases_revoked"]) == (3, 1, 1)
    assert everything["tenants"]["acme"]["leases"] == 3
    assert (late["global"]["leases"], late["global"]["leases_revoked"]) == (1, 1)
    assert late["global"]["leases_expired"] == 0


def _naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


@settings(max_examples=40, deadline=None)
@given(
    history=st.one_of(arbitrary_histories(), histories()),
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=4),
)
def test_session_leases_equal_the_reference_model(history: list[Event], sizes: list[int]) -> None:
    """On any history, in batches of any sizes, the table holds the model's rows."""
    model = Fold()
    for seq, event in enumerate(history, start=1):
        model.apply(seq, event)
    expected = sorted(
        tuple(_naive(v) for v in dataclasses.astuple(row)) for row in model.leases.values()
    )
    store = fold_store(history, sizes)
    try:
        assert sorted(store.dump()["session_leases"]) == expected
    finally:
        store.close()
