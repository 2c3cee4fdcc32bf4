"""One set of status rules: the aggregate's ``evolve`` (whose docstring has the table), the
projection's SQL fold and the projection's reference model give every tenant the same status.

The one module that imports both :mod:`actors.login` and :mod:`projections`: the packages
stay independent, and this test is what keeps their two copies of the table equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, get_args

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
    BackupFailed,
    BackupTaken,
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
    QuarantineLifted,
    Scanned,
    SessionLeased,
    SessionReleased,
    TelegramUp,
)
from events import TelegramDown as DcDown
from projections import ProjectionStore
from tests.projections._histories import T0, arbitrary_histories, as_stored, histories
from tests.projections.model import Fold

Statuses = dict[str, tuple[str, int]]  # tenant -> (status, attempt)


def aggregate(events: Sequence[Event]) -> list[Statuses]:
    """What each tenant's actor holds after each event (``fold`` over the tenant's events)."""
    states: dict[str, LoginState] = {}
    after: list[Statuses] = []
    for event in events:
        tenant = event.tenant
        states[tenant] = fold(states.get(tenant) or LoginState(tenant=tenant), [event])
        after.append({t: (s.status, s.attempt) for t, s in sorted(states.items())})
    return after


def modelled(events: Sequence[Event]) -> list[Statuses]:
    """The projection's reference model after each event."""
    model = Fold()
    after: list[Statuses] = []
    for seq, event in enumerate(events, start=1):
        model.apply(seq, event)
        after.append({t: (row.state, row.attempt) for t, row in sorted(model.status.items())})
    return after


def projected(events: Sequence[Event], sizes: Sequence[int]) -> dict[int, Statuses]:
    """``tenant_status`` after each batch, by the number of events applied so far, the events
    applied in batches of ``sizes`` (cycled)."""
    items = as_stored(events)
    after: dict[int, Statuses] = {}
    store = ProjectionStore.open(":memory:")
    try:
        at, step = 0, 0
        while at < len(items):
            size = sizes[step % len(sizes)]
            store.apply_batch(items[at : at + size])
            at, step = min(at + size, len(items)), step + 1
            after[at] = {row["tenant"]: (row["state"], row["attempt"]) for row in store.status()}
    finally:
        store.close()
    return after


def assert_all_agree(events: Sequence[Event], *splits: Sequence[int]) -> None:
    """The model after every event, and the projection after every batch of each split (batch
    sizes, cycled), equal the aggregate's ``fold`` at the same point."""
    expected = aggregate(events)
    assert modelled(events) == expected
    for sizes in splits:
        for applied, statuses in projected(events, sizes).items():
            assert statuses == expected[applied - 1], f"after {applied} events"


# --- any history ---------------------------------------------------------------------------

# Batch sizes, cycled: one batch for everything when the first is large enough.
SIZES = st.lists(st.integers(1, 80), min_size=1, max_size=4)


@settings(max_examples=40, deadline=None)
@given(
    history=st.one_of(arbitrary_histories(min_size=20), histories()),
    sizes=SIZES,
)
def test_projection_and_model_hold_the_aggregates_status(
    history: list[Event], sizes: list[int]
) -> None:
    """On any events in any order, in batches of random sizes, the projection's state and
    attempt per tenant after each batch are those ``fold`` gives the actor at that point."""
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


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["t0", "t1"]), st.integers(0, 120), _inputs), max_size=60
    ),
    sizes=SIZES,
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
    assert (aggregate(log) or [{}])[-1] == running
    assert_all_agree(log, sizes)


# --- the corner cases, decided -------------------------------------------------------------


def _event(kind: type[Event], second: int, tenant: str = "acme") -> Event:
    env: dict[str, Any] = {"tenant": tenant, "attempt": 1, "at": T0 + timedelta(seconds=second)}
    later = T0 + timedelta(minutes=10)
    extra: dict[type[Event], dict[str, Any]] = {
        LoginStarted: {"deadline": later},
        QrIssued: {"url": "tg://login?token=t", "expires_at": later, "dc_id": 2},
        PasswordRejected: {"tries_left": 3},
        Authorized: {"user_id": 7, "dc_id": 2, "session_fingerprint": "f"},
        FloodWaited: {"seconds": 3, "method": "m"},
        LoginFailed: {"reason": "crashed"},
        LoggedOut: {"reason": "command"},
        ActorRestarted: {"restart": 1, "delay_s": 0.5, "error": "x"},
        QuarantineLifted: {"sequences": (2,)},
        SessionLeased: {"holder": "app", "lease_id": "l1", "fence": 3, "expires_at": later},
        SessionReleased: {"lease_id": "l1", "reason": "released"},
        DcDown: {"dc": 2, "failures": 5, "retry_after_s": 2.0},
        TelegramUp: {"dc": 2, "down_s": 3.0},
        BackupTaken: {"backup_id": "b", "full": True, "first_seq": 1, "last_seq": 2, "bytes": 9},
        BackupFailed: {"error": "BackupTargetError"},
    }
    return kind(**env, **extra.get(kind, {}))


_LIVE_2FA: list[type[Event]] = [LoginStarted, QrIssued, Scanned, PasswordRequired]


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
    assert aggregate(events)[-1] == {"acme": (status, 1 if LoginStarted in kinds else 0)}
    assert_all_agree(events, [len(events)], [1])


# A way to each status, and every kind of event (a new one must be given fields in _event).
REACH: dict[str, list[type[Event]]] = {
    "idle": [],
    "pending": [LoginStarted],
    "scanned": [LoginStarted, QrIssued, Scanned],
    "password_required": _LIVE_2FA,
    "authorized": [LoginStarted, QrIssued, Scanned, Authorized],
    "expired": [LoginStarted, Expired],
    "failed": [LoginStarted, LoginFailed],
    "cancelled": [LoginStarted, LoginCancelled],
    "logged_out": [LoginStarted, Authorized, LoggedOut],
}
EVERY_KIND: tuple[type[Event], ...] = get_args(Event)


def test_every_event_after_every_status() -> None:
    """Each kind of event after each status (one tenant per pair), the pair in one batch and
    in two: the actor, the projection and the model agree on every one."""
    prefixes: list[Event] = []
    lasts: list[Event] = []
    for n, (status, kind) in enumerate((s, k) for s in REACH for k in EVERY_KIND):
        tenant = f"t{n}"
        prefix = [_event(k, second, tenant) for second, k in enumerate(REACH[status])]
        assert fold(LoginState(tenant=tenant), prefix).status == status
        prefixes += prefix
        lasts.append(_event(kind, len(prefix), tenant))
    assert_all_agree([*prefixes, *lasts], [len(prefixes) + len(lasts)], [len(prefixes), len(lasts)])
