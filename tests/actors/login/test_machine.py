"""The pure login machine: given events, when an input, then events (no IO, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.login import (
    LIVE,
    Cancel,
    ConfigRefused,
    DeadlineReached,
    FloodWait,
    Input,
    LoginState,
    Logout,
    Migrating,
    Password,
    PasswordNeededSeen,
    PasswordWrong,
    Policy,
    ScanSeen,
    SessionLost,
    SessionRevoked,
    Start,
    Succeeded,
    TelegramDown,
    TokenExpiredOnImport,
    TokenExported,
    TokenRefused,
    Validate,
    decide,
    evolve,
    fold,
    refresh_at,
    wakeup_at,
)
from events import (
    Authorized,
    DeviceInfo,
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
from events import SessionRevoked as SessionRevokedEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)
P = Policy()
TENANT = "acme"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def history(*inputs: tuple[float, Input]) -> tuple[LoginState, list[Event]]:
    """Run ``inputs`` through decide/evolve; returns the state and every event."""
    state = LoginState(tenant=TENANT)
    events: list[Event] = []
    for when, given_input in inputs:
        decision = decide(state, given_input, at(when), P)
        assert decision.ok, decision
        events.extend(decision.events)
        state = fold(state, decision.events)
    return state, events


def kinds(events: tuple[Event, ...] | list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


QR = TokenExported("tg://login?token=abc", at(30), 1)
STARTED = ((0, Start()), (0, QR))


# --- start and idempotency -------------------------------------------------------------------


def test_start_from_idle_opens_attempt_one_with_the_service_ttl() -> None:
    """A first start emits LoginStarted(attempt 1) with the deadline the policy allows."""
    decision = decide(LoginState(tenant=TENANT), Start(), T0, P, trace="tp")
    (event,) = decision.events
    assert isinstance(event, LoginStarted)
    assert (event.attempt, event.deadline, event.trace, event.tenant) == (1, at(600), "tp", TENANT)


def test_ttl_only_shortens_the_deadline() -> None:
    """ttl_s below the policy shortens the attempt; the policy caps it otherwise."""
    short = decide(LoginState(tenant=TENANT), Start(ttl_s=5), T0, P).events[0]
    capped = decide(LoginState(tenant=TENANT), Start(ttl_s=500), T0, Policy(qr_ttl_s=60)).events[0]
    assert isinstance(short, LoginStarted)
    assert isinstance(capped, LoginStarted)
    assert (short.deadline, capped.deadline) == (at(5), at(60))


@pytest.mark.parametrize("ttl", [0, 601, -3])
def test_ttl_out_of_range_is_an_invalid_request(ttl: int) -> None:
    """ttl_s outside 1..600 is refused."""
    assert decide(LoginState(tenant=TENANT), Start(ttl_s=ttl), T0, P).error == "invalid_request"


def test_start_while_live_or_authorized_is_idempotent() -> None:
    """A second start emits nothing; the reply names the live attempt or authorized."""
    state, _ = history(*STARTED)
    assert decide(state, Start(), at(1), P).events == ()
    done, _ = history(*STARTED, (1, ScanSeen()), (2, Succeeded(7, 1, "fp")))
    assert done.status == "authorized"
    assert decide(done, Start(), at(3), P).events == ()


def test_forced_start_cancels_the_live_attempt_then_starts_the_next() -> None:
    """force while live: LoginCancelled(old attempt) then LoginStarted(attempt + 1)."""
    state, _ = history(*STARTED)
    events = decide(state, Start(force=True), at(5), P).events
    assert kinds(events) == ["LoginCancelled", "LoginStarted"]
    assert [e.attempt for e in events] == [1, 2]


def test_forced_start_when_authorized_logs_out_first() -> None:
    """force while authorized: LoggedOut(command) then LoginStarted."""
    state, _ = history(*STARTED, (1, ScanSeen()), (2, Succeeded(7, 1, "fp")))
    events = decide(state, Start(force=True), at(5), P).events
    assert kinds(events) == ["LoggedOut", "LoginStarted"]


def test_attempt_increments_per_login_started() -> None:
    """Every LoginStarted carries the next attempt number."""
    state, _ = history(*STARTED, (1, Cancel()), (2, Start()), (3, Cancel()), (4, Start()))
    assert state.attempt == 3


# --- the QR loop ----------------------------------------------------------------------------


def test_token_scan_success_authorizes() -> None:
    """QrIssued, Scanned, Authorized; the state keeps user and dc."""
    state, events = history(*STARTED, (3, ScanSeen()), (4, Succeeded(7, 2, "fp")))
    assert kinds(events) == ["LoginStarted", "QrIssued", "Scanned", "Authorized"]
    assert (state.status, state.user_id, state.dc_id) == ("authorized", 7, 2)


def test_a_second_scan_is_ignored_and_a_new_qr_returns_to_pending() -> None:
    """Scanned only from pending; a plain token after a scan means keep going."""
    state, _ = history(*STARTED, (3, ScanSeen()))
    assert decide(state, ScanSeen(), at(4), P).events == ()
    assert evolve(state, decide(state, QR, at(4), P).events[0]).status == "pending"


def test_refresh_is_three_seconds_before_expiry_or_half_way() -> None:
    """The shell refreshes refresh_before_s before expires_at (half-way for short tokens)."""
    state, _ = history(*STARTED)
    assert refresh_at(state, P) == at(27)
    assert wakeup_at(state, P) == at(27)
    short, _ = history((0, Start()), (0, TokenExported("u", at(4), 1)))
    assert refresh_at(short, P) == at(2)
    late, _ = history((0, Start(ttl_s=10)), (0, QR))
    assert wakeup_at(late, P) == at(10)


def test_migration_and_expired_import_emit_nothing() -> None:
    """Migrating and TokenExpiredOnImport are the shell's business: no events."""
    state, _ = history(*STARTED, (3, ScanSeen()))
    assert decide(state, Migrating(2), at(4), P).events == ()
    assert decide(state, TokenExpiredOnImport(), at(4), P).events == ()


# --- 2FA -----------------------------------------------------------------------------------


def test_password_needed_then_right_password_authorizes() -> None:
    """PasswordRequired(hint); a password command is accepted; success authorizes."""
    state, events = history(*STARTED, (3, ScanSeen()), (4, PasswordNeededSeen("pet")))
    assert isinstance(events[-1], PasswordRequired)
    assert events[-1].hint == "pet"
    assert decide(state, Password("pw"), at(5), P).ok
    assert kinds(decide(state, Succeeded(7, 1, "fp"), at(5), P).events) == ["Authorized"]


def test_five_wrong_passwords_fail_the_attempt() -> None:
    """tries_left counts down 4..0; the fifth wrong password adds LoginFailed."""
    state, _ = history(*STARTED, (3, ScanSeen()), (4, PasswordNeededSeen()))
    lefts = []
    for i in range(5):
        events = decide(state, PasswordWrong(), at(5 + i), P).events
        rejected = events[0]
        assert isinstance(rejected, PasswordRejected)
        lefts.append(rejected.tries_left)
        state = fold(state, events)
    assert lefts == [4, 3, 2, 1, 0]
    assert state.status == "failed"
    assert isinstance(events[-1], LoginFailed)
    assert events[-1].reason == "password_attempts"


def test_password_in_any_other_state_is_wrong_state() -> None:
    """The password command fits only password_required; its repr hides the secret."""
    state, _ = history(*STARTED)
    assert decide(state, Password("hunter2"), at(1), P).error == "wrong_state"
    assert "hunter2" not in repr(Password("hunter2"))


# --- flood waits ---------------------------------------------------------------------------


@pytest.mark.parametrize(("random", "factor"), [(0.0, 1.1), (1.0, 1.3), (0.5, 1.2)])
def test_flood_wait_retries_after_seconds_plus_jitter(random: float, factor: float) -> None:
    """retry_at = now + seconds * (1 + jitter), jitter in [0.1, 0.3] from the random value."""
    state, _ = history(*STARTED)
    (event,) = decide(state, FloodWait(10, "auth.exportLoginToken", random), at(1), P).events
    assert isinstance(event, FloodWaited)
    assert event.retry_at == at(1 + 10 * factor)
    assert event.method == "auth.exportLoginToken"


def test_flood_wait_over_the_cap_or_past_the_deadline_fails() -> None:
    """Over flood_max_wait_s, or a retry after the deadline: FloodWaited(None) + LoginFailed."""
    state, _ = history(*STARTED)
    too_long = decide(state, FloodWait(61, "m", 0.0), at(1), P).events
    late = decide(state, FloodWait(50, "m", 0.0), at(560), P).events
    for events in (too_long, late):
        assert kinds(events) == ["FloodWaited", "LoginFailed"]
        assert isinstance(events[0], FloodWaited)
        assert events[0].retry_at is None
        assert isinstance(events[1], LoginFailed)
        assert events[1].reason == "flood_wait"


# --- endings -------------------------------------------------------------------------------


def test_ownership_mismatch_fails() -> None:
    """Another account than expected_user_id: LoginFailed(ownership_mismatch)."""
    state, _ = history((0, Start(expected_user_id=7)), (0, QR), (1, ScanSeen()))
    (event,) = decide(state, Succeeded(8, 1, "fp"), at(2), P).events
    assert isinstance(event, LoginFailed)
    assert event.reason == "ownership_mismatch"
    assert kinds(decide(state, Succeeded(7, 1, "fp"), at(2), P).events) == ["Authorized"]


def test_deadline_expires_only_when_reached() -> None:
    """DeadlineReached before the deadline is ignored, at the deadline it is Expired."""
    state, _ = history(*STARTED)
    assert decide(state, DeadlineReached(), at(599), P).events == ()
    assert kinds(decide(state, DeadlineReached(), at(600), P).events) == ["Expired"]


@pytest.mark.parametrize(
    ("observation", "reason"),
    [
        (TokenRefused(), "token_invalid"),
        (ConfigRefused(), "api_id_invalid"),
        (TelegramDown(), "telegram_unavailable"),
        (SessionRevoked(), "session_revoked"),
        (SessionLost(), "session_lost"),
    ],
)
def test_telegram_failures_fail_a_live_attempt(observation: Input, reason: str) -> None:
    """Errors during a live attempt give LoginFailed with a stable reason."""
    state, _ = history(*STARTED)
    (event,) = decide(state, observation, at(1), P).events
    assert isinstance(event, LoginFailed)
    assert event.reason == reason


def test_cancel_logout_validate_fit_only_their_states() -> None:
    """cancel needs a live attempt; logout and validate need authorized."""
    idle = LoginState(tenant=TENANT)
    for command in (Cancel(), Logout(), Validate()):
        assert decide(idle, command, T0, P).error == "wrong_state"
    live, _ = history(*STARTED)
    assert kinds(decide(live, Cancel(), at(1), P).events) == ["LoginCancelled"]
    done, _ = history(*STARTED, (1, ScanSeen()), (2, Succeeded(7, 1, "fp")))
    logged_out = decide(done, Logout(), at(3), P).events
    assert kinds(logged_out) == ["LoggedOut"]
    assert isinstance(logged_out[0], LoggedOut)
    assert logged_out[0].reason == "command"
    assert decide(done, Validate(), at(3), P).events == ()
    noticed, revoked = decide(done, SessionRevoked(), at(3), P).events
    assert kinds((noticed, revoked)) == ["SessionRevoked", "LoggedOut"]
    assert getattr(noticed, "noticed_by", None) == "validation"
    assert isinstance(revoked, LoggedOut)
    assert revoked.reason == "revoked"


def test_start_records_the_tenants_device_and_state_keeps_it() -> None:
    """``start`` with device fields stores them in ``LoginStarted``; the state keeps them
    through authorization (validation and logout connect as that device)."""
    device = DeviceInfo(model="Acme Parser", system="Linux")
    started = decide(LoginState(tenant=TENANT), Start(device=device), T0, P).events
    assert isinstance(started[0], LoginStarted)
    assert started[0].device == device
    state = fold(LoginState(tenant=TENANT), started)
    for when, given_input in ((1, ScanSeen()), (2, Succeeded(7, 1, "fp"))):
        state = fold(state, decide(state, given_input, at(when), P).events)
    assert state.status == "authorized"
    assert state.device == device


def test_late_observations_after_the_end_emit_nothing() -> None:
    """An answer arriving after the attempt ended is ignored."""
    state, _ = history(*STARTED, (1, Cancel()))
    for observation in (QR, ScanSeen(), Succeeded(1, 1, "f"), DeadlineReached(), TelegramDown()):
        assert decide(state, observation, at(900), P).events == ()


# --- properties ----------------------------------------------------------------------------

# Which events each status may produce (the states of docs/contract.md, "Events").
ALLOWED: dict[str, set[type[Event]]] = {
    "idle": {LoginStarted},
    "pending": {QrIssued, Scanned, PasswordRequired, Authorized, FloodWaited, LoginFailed,
                LoginCancelled, Expired, LoginStarted},
    "scanned": {QrIssued, PasswordRequired, Authorized, FloodWaited, LoginFailed, LoginCancelled,
                Expired, LoginStarted},
    "password_required": {PasswordRejected, Authorized, FloodWaited, LoginFailed,
                          LoginCancelled, Expired, LoginStarted},
    "authorized": {SessionRevokedEvent, LoggedOut, LoginStarted},
    "expired": {LoginStarted},
    "failed": {LoginStarted},
    "cancelled": {LoginStarted},
    "logged_out": {LoginStarted},
}  # fmt: skip

inputs = st.one_of(
    st.builds(
        Start,
        expected_user_id=st.sampled_from([None, 7]),
        ttl_s=st.sampled_from([None, 1, 30, 600]),
        force=st.booleans(),
    ),
    st.just(Password("pw")),
    st.just(Cancel()),
    st.just(Logout()),
    st.just(Validate()),
    st.builds(
        TokenExported,
        url=st.just("tg://login?token=x"),
        expires_at=st.integers(1, 40).map(at),
        dc_id=st.sampled_from([1, 2]),
    ),
    st.just(ScanSeen()),
    st.builds(Succeeded, user_id=st.sampled_from([7, 8]), dc_id=st.just(1),
              session_fingerprint=st.just("f")),
    st.builds(Migrating, dc_id=st.just(2)),
    st.just(TokenExpiredOnImport()),
    st.just(PasswordNeededSeen("h")),
    st.just(PasswordWrong()),
    st.builds(FloodWait, seconds=st.integers(0, 90), method=st.just("m"),
              random=st.floats(0, 1)),
    st.just(DeadlineReached()),
    st.sampled_from([TokenRefused(), ConfigRefused(), TelegramDown(), SessionRevoked(),
                     SessionLost()]),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 120), inputs), max_size=40))
def test_random_inputs_never_make_an_invalid_transition(steps: list[tuple[int, Input]]) -> None:
    """Whatever arrives, each event fits the state it is emitted in, attempts only grow, and
    folding the produced history equals the running state."""
    state = LoginState(tenant=TENANT)
    now = T0
    produced: list[Event] = []
    for delta, given_input in steps:
        now += timedelta(seconds=delta)
        decision = decide(state, given_input, now, P)
        if not decision.ok:
            assert decision.events == ()
        for event in decision.events:
            assert type(event) in ALLOWED[state.status], (state.status, event)
            assert event.tenant == TENANT
            assert event.at == now
            before = state.attempt
            state = evolve(state, event)
            assert state.attempt >= before
            if isinstance(event, LoginStarted):
                assert state.attempt == before + 1
            else:
                assert event.attempt == state.attempt
            produced.append(event)
        if state.status in LIVE:
            assert state.deadline is not None
    assert fold(LoginState(tenant=TENANT), produced) == state
    assert state.tries_left is None or 0 <= state.tries_left < P.password_tries


def test_expired_event_ends_the_attempt() -> None:
    """evolve(Expired) leaves a terminal state without a QR."""
    state, _ = history(*STARTED)
    state = evolve(state, Expired(tenant=TENANT, attempt=1, at=at(600)))
    assert (state.status, state.qr_url, state.live) == ("expired", None, False)


def test_authorized_then_logout_events_fold() -> None:
    """Authorized -> LoggedOut folds to logged_out and forgets the user."""
    state, _ = history(*STARTED)
    state = fold(
        state,
        [
            Authorized(tenant=TENANT, attempt=1, at=at(1), user_id=5, dc_id=1,
                       session_fingerprint="f"),
            LoggedOut(tenant=TENANT, attempt=1, at=at(2), reason="command"),
        ],
    )  # fmt: skip
    assert (state.status, state.user_id) == ("logged_out", None)
