"""One set of status rules: the aggregate's ``evolve`` (whose docstring has the table), the
projection's SQL fold and the projection's reference model give every tenant the same status.

The one module that imports both :mod:`actors.login` and :mod:`projections`: the packages
stay independent, and this test is what keeps their two copies of the table equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.login import (
    Cancel,
    DeadlineReached,
    FloodWait,
    Input,
    LoginState,
    Logout,
    PasswordNeededSeen,
    PasswordWrong,
    Policy,
    ScanSeen,
    SessionRevoked,
    Start,
    Succeeded,
    TelegramDown,
    TokenExported,
    decide,
    evolve,
    fold,
)
from events import (
    ActorRestarted,
    Authorized,
    Event,
    Expired,
    LoggedOut,
    LoginStarted,
    PasswordRejected,
    PasswordRequired,
    QrIssued,
    QuarantineLifted,
    Scanned,
)
from projections import ProjectionStore
from tests.projections._histories import T0, arbitrary_histories, as_stored, histories
from tests.projections.model import Fold

Statuses = dict[str, tuple[str, int]]  # tenant -> (status, attempt)


def aggregate(events: Sequence[Event]) -> Statuses:
    """What each tenant's actor would hold after folding its events."""
    tenants = sorted({event.tenant for event in events})
    states = {t: fold(LoginState(tenant=t), (e for e in events if e.tenant == t)) for t in tenants}
    return {t: (s.status, s.attempt) for t, s in states.items()}


def projected(events: Sequence[Event], sizes: Sequence[int]) -> Statuses:
    """``tenant_status`` after applying the events in batches of ``sizes`` (cycled)."""
    items = as_stored(events)
    store = ProjectionStore.open(":memory:")
    try:
        at, step = 0, 0
        while at < len(items):
            size = sizes[step % len(sizes)]
            store.apply_batch(items[at : at + size])
            at, step = at + size, step + 1
        return {row["tenant"]: (row["state"], row["attempt"]) for row in store.status()}
    finally:
        store.close()


def modelled(events: Sequence[Event]) -> Statuses:
    """The projection's reference model, one event at a time."""
    model = Fold()
    for seq, event in enumerate(events, start=1):
        model.apply(seq, event)
    return {tenant: (row.state, row.attempt) for tenant, row in model.status.items()}


def assert_all_agree(events: Sequence[Event], sizes: Sequence[int]) -> None:
    expected = aggregate(events)
    assert modelled(events) == expected
    assert projected(events, [max(len(events), 1)]) == expected
    assert projected(events, [1]) == expected
    assert projected(events, sizes) == expected


# --- any history ---------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    history=st.one_of(arbitrary_histories(), histories()),
    sizes=st.lists(st.integers(1, 25), min_size=1, max_size=4),
)
def test_projection_and_model_hold_the_aggregates_status(
    history: list[Event], sizes: list[int]
) -> None:
    """On any events in any order, in one batch, one event per batch or random batches, the
    projection's state and attempt per tenant are those ``fold`` gives the actor."""
    assert_all_agree(history, sizes)


# --- histories the protocol writes ---------------------------------------------------------

POLICY = Policy()
CRASH = None  # the supervisor's ActorRestarted, which no decide writes

_inputs: st.SearchStrategy[Input | None] = st.one_of(
    st.builds(Start, expected_user_id=st.sampled_from([None, 7]), force=st.booleans()),
    st.sampled_from([Cancel(), Logout(), ScanSeen(), PasswordNeededSeen("h"), PasswordWrong(),
                     DeadlineReached(), TelegramDown(), SessionRevoked(), CRASH]),
    st.builds(TokenExported, url=st.just("tg://login?token=x"),
              expires_at=st.integers(1, 40).map(lambda s: T0 + timedelta(seconds=s)),
              dc_id=st.sampled_from([1, 2])),
    st.builds(Succeeded, user_id=st.sampled_from([7, 8]), dc_id=st.just(1),
              session_fingerprint=st.just("f")),
    st.builds(FloodWait, seconds=st.integers(0, 90), method=st.just("m"),
              random=st.floats(0, 1)),
)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["t0", "t1"]), st.integers(0, 120), _inputs), max_size=60
    ),
    sizes=st.lists(st.integers(1, 25), min_size=1, max_size=4),
)
def test_the_projection_follows_what_decide_writes(
    steps: list[tuple[str, int, Input | None]], sizes: list[int]
) -> None:
    """Logs as the service writes them (``decide`` per tenant, plus supervisor restarts):
    the projection ends where each running actor's state is."""
    states = {tenant: LoginState(tenant=tenant) for tenant in ("t0", "t1")}
    now = T0
    log: list[Event] = []
    for tenant, delta, given_input in steps:
        now += timedelta(seconds=delta)
        state = states[tenant]
        if given_input is None:  # CRASH
            events: tuple[Event, ...] = (
                ActorRestarted(tenant=tenant, attempt=state.attempt, at=now, restart=1,
                               delay_s=0.5, error="x"),
            )  # fmt: skip
        else:
            events = decide(state, given_input, now, POLICY).events
        for event in events:
            state = evolve(state, event)
        states[tenant] = state
        log.extend(events)
    running = {t: (s.status, s.attempt) for t, s in states.items() if s.last_event is not None}
    assert aggregate(log) == running
    assert_all_agree(log, sizes)


# --- the corner cases, decided -------------------------------------------------------------


def _event(kind: type[Event], second: int) -> Event:
    env: dict[str, Any] = {"tenant": "acme", "attempt": 1, "at": T0 + timedelta(seconds=second)}
    later = T0 + timedelta(minutes=10)
    extra: dict[type[Event], dict[str, Any]] = {
        LoginStarted: {"deadline": later},
        QrIssued: {"url": "tg://login?token=t", "expires_at": later, "dc_id": 2},
        PasswordRejected: {"tries_left": 3},
        Authorized: {"user_id": 7, "dc_id": 2, "session_fingerprint": "f"},
        LoggedOut: {"reason": "command"},
        ActorRestarted: {"restart": 1, "delay_s": 0.5, "error": "x"},
        QuarantineLifted: {"sequences": (2,)},
    }
    return kind(**env, **extra.get(kind, {}))


_LIVE_2FA = [LoginStarted, QrIssued, Scanned, PasswordRequired]


@pytest.mark.parametrize(
    ("kinds", "status"),
    [
        pytest.param([*_LIVE_2FA, QrIssued], "pending", id="token-during-2fa"),
        pytest.param([LoginStarted, QrIssued, Scanned, QrIssued], "pending", id="token-after-scan"),
        pytest.param([*_LIVE_2FA, Scanned], "scanned", id="scan-during-2fa"),
        pytest.param([LoginStarted, Expired, Scanned], "scanned", id="scan-after-the-end"),
        pytest.param([LoginStarted, Expired, QrIssued], "pending", id="token-after-the-end"),
        pytest.param([LoginStarted, PasswordRejected], "password_required", id="rejected-outside-2fa"),
        pytest.param([Expired, PasswordRequired], "password_required", id="2fa-when-not-live"),
        pytest.param([LoginStarted, Authorized, LoginStarted], "pending", id="start-after-authorized"),
        pytest.param([LoginStarted, Authorized, ActorRestarted], "authorized", id="restart-keeps"),
        pytest.param([*_LIVE_2FA, QuarantineLifted], "password_required", id="quarantine-lifted-keeps"),
        pytest.param([Scanned], "scanned", id="no-start"),
        pytest.param([ActorRestarted], "idle", id="nothing-named"),
    ],
)  # fmt: skip
def test_the_status_is_the_last_named_one(kinds: list[type[Event]], status: str) -> None:
    """Whatever came before, the last event that names a status decides it (the table in
    ``evolve``'s docstring), in the actor, the projection and the model alike."""
    events = [_event(kind, second) for second, kind in enumerate(kinds)]
    assert aggregate(events) == {"acme": (status, 1 if LoginStarted in kinds else 0)}
    assert_all_agree(events, [2])
