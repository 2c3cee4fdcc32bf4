"""The pure lease rules: given events, when a lease command (or the timer), then events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.login import (
    PROOF_INVALID,
    HeldLease,
    Input,
    Lease,
    LeaseDue,
    LoginState,
    Logout,
    Policy,
    Release,
    Renew,
    ScanSeen,
    SessionRevoked,
    Start,
    Succeeded,
    TokenExported,
    Validate,
    decide,
    fold,
    proof_digest,
    renewal,
    uses_session,
)
from events import Event, LoggedOut, SessionLeased, SessionReleased

T0 = datetime(2026, 1, 1, tzinfo=UTC)
P = Policy()
TENANT = "acme"
KEY = b"k" * 32
PROOF = b"p" * 32  # the holder's secret (the shell makes a random one per lease)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def kinds(events: tuple[Event, ...] | list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def run(state: LoginState, *inputs: tuple[float, Input]) -> tuple[LoginState, list[Event]]:
    """Feed ``inputs`` through decide/evolve (each must be accepted)."""
    events: list[Event] = []
    for when, given_input in inputs:
        decision = decide(state, given_input, at(when), P)
        assert decision.ok, decision
        events.extend(decision.events)
        state = fold(state, decision.events)
    return state, events


def lease(
    holder: str = "parser-1", *, ttl_s: int = 300, lease_id: str = "L1", fence: int = 0
) -> Lease:
    return Lease(
        holder, KEY, "x25519", ttl_s, lease_id, fence, proof_digest(TENANT, lease_id, PROOF)
    )


def renewed(state: LoginState, command: Renew, when: float) -> LoginState:
    """``state`` after an accepted renewal (the shell keeps the lease ``renewal`` gives)."""
    lease = renewal(state, command, at(when))
    assert isinstance(lease, HeldLease), lease
    return replace(state, lease=lease)


AUTHORIZED, _ = run(
    LoginState(tenant=TENANT),
    (0, Start()),
    (0, TokenExported("tg://login?token=a", at(30), 2)),
    (1, ScanSeen()),
    (2, Succeeded(1001, 2, "fp")),
)
LEASED, _ = run(AUTHORIZED, (10, lease(fence=4)))


# --- lease ---------------------------------------------------------------------------------


def test_a_lease_of_an_authorized_session_names_holder_fence_and_expiry() -> None:
    """lease while authorized: SessionLeased(holder, lease_id, fence, now + ttl_s); the status
    stays authorized and the state holds the lease."""
    decision = decide(AUTHORIZED, lease(fence=4), at(10), P)
    (event,) = decision.events
    assert isinstance(event, SessionLeased)
    assert (event.holder, event.lease_id, event.fence, event.expires_at) == (
        "parser-1",
        "L1",
        4,
        at(310),
    )
    state = fold(AUTHORIZED, decision.events)
    assert state.status == "authorized"
    assert state.lease is not None
    assert (state.lease.holder, state.lease.ttl_s) == ("parser-1", 300)


@pytest.mark.parametrize(
    "state",
    [LoginState(tenant=TENANT), run(LoginState(tenant=TENANT), (0, Start()))[0]],
    ids=["idle", "pending"],
)
def test_no_lease_without_an_authorized_session(state: LoginState) -> None:
    """Idle or in the middle of a login: not_authorized, nothing stored."""
    decision = decide(state, lease(), at(1), P)
    assert (decision.error, decision.events) == ("not_authorized", ())


@pytest.mark.parametrize("holder", ["parser-1", "other"])
def test_a_running_lease_refuses_everyone_with_its_holder(holder: str) -> None:
    """Another holder, or the holder itself, gets ``leased`` with holder and expires_at."""
    decision = decide(LEASED, lease(holder, lease_id="L2"), at(20), P)
    assert decision.error == "leased"
    assert decision.extra == {"holder": "parser-1", "expires_at": at(310)}
    assert decision.events == ()


@pytest.mark.parametrize("ttl", [9, 3601, 0])
def test_lease_ttl_out_of_range_is_invalid(ttl: int) -> None:
    """ttl_s outside 10..3600 is an invalid request."""
    assert decide(AUTHORIZED, lease(ttl_s=ttl), at(1), P).error == "invalid_request"


def test_a_lease_after_expiry_ends_the_old_one_and_gets_a_higher_fence() -> None:
    """Past expires_at a new lease is granted: SessionReleased(expired) of the old one first,
    then SessionLeased with a fence above the old one's, even if the shell passed a lower one."""
    state, events = run(LEASED, (311, lease("other", lease_id="L2", fence=0)))
    assert kinds(events) == ["SessionReleased", "SessionLeased"]
    released, granted = events
    assert isinstance(released, SessionReleased)
    assert isinstance(granted, SessionLeased)
    assert (released.lease_id, released.reason) == ("L1", "expired")
    assert granted.fence > 4
    assert state.lease is not None
    assert state.lease.holder == "other"


# --- renew ---------------------------------------------------------------------------------


def test_renew_keeps_the_fence_and_moves_the_expiry_without_an_event() -> None:
    """renew with the proof: no event; the lease keeps lease_id, fence and digest, and
    expires at now + the ttl (the lease's own, or the one given)."""
    assert decide(LEASED, Renew("L1", proof=PROOF), at(100), P) == decide(
        LEASED, Validate(), at(100), P
    )
    state = renewed(LEASED, Renew("L1", proof=PROOF), 100)
    assert LEASED.lease is not None
    assert state.lease == replace(LEASED.lease, expires_at=at(400))
    shorter = renewed(state, Renew("L1", ttl_s=60, proof=PROOF), 200)
    assert shorter.lease is not None
    assert (shorter.lease.expires_at, shorter.lease.ttl_s) == (at(260), 60)
    bad = decide(state, Renew("L1", ttl_s=5, proof=PROOF), at(200), P)
    assert bad.error == "invalid_request"


@pytest.mark.parametrize(
    ("state", "lease_id", "when"),
    [
        (LEASED, "L1", 310),  # expired (exactly at expires_at)
        (LEASED, "nope", 20),  # another lease
        (AUTHORIZED, "L1", 20),  # no lease at all
        (run(LEASED, (20, Release("L1", proof=PROOF)))[0], "L1", 21),  # released
    ],
    ids=["expired", "unknown", "none", "released"],
)
def test_renew_or_release_of_an_ended_or_unknown_lease_is_lost(
    state: LoginState, lease_id: str, when: float
) -> None:
    """renew and release of anything but the running lease: lease_lost, nothing stored, with
    or without a proof."""
    for proof in (PROOF, b""):
        for command in (
            Renew(lease_id, proof=proof),
            Release(lease_id, proof=proof),
            Release(lease_id, revoked=True, proof=proof),
        ):
            decision = decide(state, command, at(when), P)
            assert (decision.error, decision.events) == ("lease_lost", ())


# --- the holder's proof ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "proof",
    [
        b"",  # none: what a reader of the log has
        b"q" * 32,  # a guess
        PROOF[:-1],  # almost
        bytes.fromhex(proof_digest(TENANT, "L1", PROOF)),  # the digest in the log itself
    ],
    ids=["missing", "wrong", "truncated", "the-logged-digest"],
)
def test_renew_release_and_revoke_without_the_proof_change_nothing(proof: bytes) -> None:
    """Whoever lacks the holder's secret (it knows lease_id, fence and the digest from the
    log): renew, release and revoked release are lease_proof_invalid, no event, and the lease
    runs on as before."""
    for command in (
        Renew("L1", proof=proof),
        Renew("L1", ttl_s=3600, proof=proof),
        Release("L1", proof=proof),
        Release("L1", revoked=True, proof=proof),
    ):
        decision = decide(LEASED, command, at(20), P)
        assert (decision.error, decision.events) == (PROOF_INVALID, ())
        assert "p" * 8 not in (decision.message or "")
        if isinstance(command, Renew):
            assert renewal(LEASED, command, at(20)) == decision
    assert LEASED.lease is not None
    assert LEASED.lease.running(at(309))


def test_a_proof_names_one_lease_of_one_tenant() -> None:
    """The digest binds tenant and lease id: the same secret under another lease or tenant
    gives another digest, and another lease's proof does not open this one."""
    assert proof_digest(TENANT, "L1", PROOF) != proof_digest(TENANT, "L2", PROOF)
    assert proof_digest(TENANT, "L1", PROOF) != proof_digest("other", "L1", PROOF)
    other_tenant = replace(LEASED, tenant="other")
    assert decide(other_tenant, Renew("L1", proof=PROOF), at(20), P).error == PROOF_INVALID
    second, _ = run(LEASED, (20, Release("L1", proof=PROOF)), (21, lease(lease_id="L2", fence=9)))
    assert decide(second, Renew("L2", proof=b"q" * 32), at(22), P).error == PROOF_INVALID
    assert decide(second, Renew("L2", proof=PROOF), at(22), P).ok


def test_the_grant_records_the_digest_and_never_the_proof() -> None:
    """SessionLeased carries proof_digest (hex SHA-256 under a label, tenant and lease id);
    a lease without a digest is not granted."""
    (event,) = decide(AUTHORIZED, lease(), at(10), P).events
    assert isinstance(event, SessionLeased)
    assert event.proof_digest == proof_digest(TENANT, "L1", PROOF)
    assert len(event.proof_digest) == 64
    assert PROOF.hex() not in repr(event)
    assert "pppp" not in repr(event)
    undigested = Lease("h", KEY, "x25519", 300, "L1", 0)
    assert decide(AUTHORIZED, undigested, at(10), P).error == "invalid_request"
    assert "pppp" not in repr(Renew("L1", proof=PROOF)) + repr(Release("L1", proof=PROOF))


def test_a_grant_from_before_proofs_can_only_expire_or_be_logged_out() -> None:
    """An old SessionLeased (no proof_digest): no proof renews, releases or revokes it; it
    ends at its expiry, or by logout."""
    env = {"tenant": TENANT, "attempt": AUTHORIZED.attempt, "at": at(10)}
    old = SessionLeased(**env, holder="h", lease_id="L0", fence=3, expires_at=at(310))  # type: ignore[arg-type]
    state = fold(AUTHORIZED, [old])
    for proof in (b"", PROOF, b"\x00" * 32):
        for command in (Renew("L0", proof=proof), Release("L0", proof=proof)):
            assert decide(state, command, at(20), P).error == PROOF_INVALID
    assert kinds(decide(state, LeaseDue(), at(310), P).events) == ["SessionReleased"]
    assert kinds(decide(state, Logout(), at(20), P).events) == ["SessionReleased", "LoggedOut"]


# --- release, expiry, logout ---------------------------------------------------------------


def test_release_ends_the_lease() -> None:
    """release: SessionReleased(released); the session is the service's again."""
    state, events = run(LEASED, (20, Release("L1", proof=PROOF)))
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in events] == [
        ("SessionReleased", "released")
    ]
    assert state.lease is None
    assert state.status == "authorized"
    assert uses_session(state)


def test_a_revoked_release_logs_the_tenant_out() -> None:
    """release with revoked: SessionReleased(revoked), SessionRevoked (noticed by the holder),
    then LoggedOut(revoked)."""
    state, events = run(LEASED, (20, Release("L1", revoked=True, proof=PROOF)))
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in events] == [
        ("SessionReleased", "revoked"),
        ("SessionRevoked", None),
        ("LoggedOut", "revoked"),
    ]
    assert (state.status, state.lease) == ("logged_out", None)


def test_the_timer_ends_an_overdue_lease_only() -> None:
    """LeaseDue before expires_at: nothing; at or after: SessionReleased(expired)."""
    assert decide(LEASED, LeaseDue(), at(309), P).events == ()
    _, events = run(LEASED, (310, LeaseDue()))
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in events] == [
        ("SessionReleased", "expired")
    ]
    assert decide(AUTHORIZED, LeaseDue(), at(999), P).events == ()


def test_logout_while_leased_ends_the_lease_first() -> None:
    """logout: SessionReleased(logout) then LoggedOut(command); a lapsed lease says expired."""
    _, events = run(LEASED, (20, Logout()))
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in events] == [
        ("SessionReleased", "logout"),
        ("LoggedOut", "command"),
    ]
    _, late = run(LEASED, (400, Logout()))
    assert isinstance(late[0], SessionReleased)
    assert late[0].reason == "expired"


def test_forced_start_and_revocation_end_the_lease_too() -> None:
    """Whatever logs the session out ends its lease first."""
    _, forced = run(LEASED, (20, Start(force=True)))
    assert kinds(forced) == ["SessionReleased", "LoggedOut", "LoginStarted"]
    _, revoked = run(LEASED, (20, SessionRevoked()))
    assert kinds(revoked) == ["SessionReleased", "SessionRevoked", "LoggedOut"]
    assert isinstance(revoked[2], LoggedOut)
    assert revoked[2].reason == "revoked"


def test_validation_pauses_while_leased() -> None:
    """Validate is accepted with no events; the shell must not use a leased session."""
    assert decide(LEASED, Validate(), at(20), P).events == ()
    assert not uses_session(LEASED)
    assert uses_session(AUTHORIZED)


# --- fences over any sequence ----------------------------------------------------------------

_steps = st.lists(
    st.tuples(
        st.integers(1, 400),
        st.sampled_from(["lease", "renew", "release", "due", "logout", "start"]),
    ),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(steps=_steps)
def test_fences_only_grow_and_one_lease_runs_at_a_time(steps: list[tuple[int, str]]) -> None:
    """Over any sequence of lease commands, timer ticks, logouts and new logins: every new
    lease's fence exceeds every earlier one, a renewal keeps its lease's fence, and a new
    lease is granted only when no other lease runs."""
    state, now = AUTHORIZED, 0.0
    fences: list[int] = []
    for n, (gap, what) in enumerate(steps):
        now += gap
        held = state.lease
        current = held.lease_id if held else "none"
        options: dict[str, Input] = {
            "lease": lease(f"h{n}", lease_id=f"L{n}", ttl_s=120),
            "renew": Renew(current, proof=PROOF),
            "release": Release(current, proof=PROOF),
            "due": LeaseDue(),
            "logout": Logout(),
            "start": Start(force=True),
        }
        command = options[what]
        decision = decide(state, command, at(now), P)
        for event in decision.events:
            if isinstance(event, SessionLeased):
                if event.lease_id == current:
                    assert event.fence == fences[-1]
                else:
                    assert held is None or not held.running(at(now))
                    assert all(event.fence > f for f in fences)
                    fences.append(event.fence)
        state = fold(state, decision.events)
        if what == "renew" and decision.ok:
            state = renewed(state, Renew(current, proof=PROOF), now)
        if state.status != "authorized":  # log in again so leases can go on
            state, _ = run(
                state,
                (now, Start()),
                (now, TokenExported("tg://login?token=b", at(now + 30), 2)),
                (now, Succeeded(1001, 2, "fp")),
            )
