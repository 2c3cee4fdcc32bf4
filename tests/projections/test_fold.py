"""The pure fold, and the store's incremental folding against a one-batch fold."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from events import ActorRestarted, Event, Record, Undecodable, UndecodableEventError
from projections import Fold, ProjectionStore
from projections.fold import minute_of
from tests.projections._histories import (
    T0,
    Script,
    as_records,
    attempt_events,
    histories,
    tenant_events,
)


def fold(events: list[Event]) -> Fold:
    result = Fold()
    for record in as_records(events):
        result.apply(record.seq, record.event)
    return result


def test_authorized_login_gives_status_and_attempt_figures() -> None:
    """A plain login ends authorized with its scan and authorize times measured from start."""
    events = attempt_events("acme", 1, T0, Script("authorized", qrs=2, floods=1, gap=5))
    result = fold(events)
    status = result.status["acme"]
    assert status.state == "authorized"
    assert status.user_id == 1001
    assert status.qr_url is None
    assert (status.attempts, status.qr_issued, status.flood_waits) == (1, 2, 1)
    attempt = result.attempts[("acme", 1)]
    assert attempt.outcome == "authorized"
    assert attempt.qr_count == 2
    assert attempt.flood_wait_seconds == 3
    assert attempt.time_to_scan_s == 20.0  # started, 2 QRs, 1 flood wait, then scanned: 4 gaps
    assert attempt.time_to_authorize_s == 25.0
    assert attempt.first_qr_at == T0 + timedelta(seconds=5)


def test_live_attempt_shows_the_current_qr() -> None:
    """While pending, the status carries the latest QR url and its expiry."""
    result = fold(attempt_events("acme", 1, T0, Script("live", qrs=3)))
    status = result.status["acme"]
    assert status.state == "pending"
    assert status.qr_url is not None
    assert status.qr_url.endswith("x2AAAAAAAAAAAAAAAA")
    assert result.attempts[("acme", 1)].outcome is None


def test_crash_is_a_failure_and_restarts_count() -> None:
    """LoginFailed(crashed) ends the attempt as failed; every ActorRestarted is counted."""
    result = fold(attempt_events("acme", 1, T0, Script("crashed", restarts=2)))
    attempt = result.attempts[("acme", 1)]
    assert (attempt.outcome, attempt.fail_reason, attempt.restarts) == ("failed", "crashed", 2)
    assert result.status["acme"].restarts == 2
    assert result.status["acme"].state == "failed"


def test_a_second_ending_does_not_change_the_outcome() -> None:
    """The first terminal event decides the outcome; a later one only moves the status."""
    events = attempt_events("acme", 1, T0, Script("expired"))
    late = ActorRestarted(tenant="acme", attempt=1, at=T0 + timedelta(hours=1), restart=1,
                          delay_s=1.0, error="late")  # fmt: skip
    result = fold([*events, late])
    assert result.attempts[("acme", 1)].outcome == "expired"
    assert result.status["acme"].last_event == "ActorRestarted"


def test_counts_per_minute_and_type() -> None:
    """Each event adds one to its (minute, tenant, type) count."""
    events = tenant_events("acme", [Script("live", qrs=3, gap=30)])
    result = fold(events)
    assert result.counts[(minute_of(T0), "acme", "LoginStarted")] == 1
    assert sum(n for (_, _, kind), n in result.counts.items() if kind == "QrIssued") == 3


def _apply_in_chunks(
    path: Path | str, items: list[Record | Undecodable], sizes: list[int]
) -> dict[str, Any]:
    store = ProjectionStore.open(path)
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


@settings(max_examples=25, deadline=None)
@given(history=histories(), sizes=st.lists(st.integers(3, 60), min_size=1, max_size=4),
       garbage_at=st.integers(0, 200))  # fmt: skip
def test_incremental_equals_one_batch(
    history: list[Event], sizes: list[int], garbage_at: int
) -> None:
    """Folding in batches of any sizes (re-applying old ones too) equals one whole fold."""
    items: list[Record | Undecodable] = list(as_records(history))
    at = min(garbage_at, len(items))
    bad = Undecodable(0, "tgqr.evt.t0", b"{", "", UndecodableEventError(0, "tgqr.evt.t0", "junk"))
    items.insert(at, bad)
    items = [
        Record(i + 1, r.tenant, r.event, r.mac, r.data, r.stored_at)
        if isinstance(r, Record)
        else Undecodable(i + 1, r.subject, r.data, r.mac, r.error)
        for i, r in enumerate(items)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        whole = _apply_in_chunks(":memory:", items, [len(items)])
        # A replayed overlap (items at or below the checkpoint) must be skipped.
        replayed = items[: len(items) // 2] + items
        chunked = _apply_in_chunks(Path(tmp) / "chunks.duckdb", replayed, sizes)
    assert chunked == whole
    assert len(whole["dead_letters"]) == 1
