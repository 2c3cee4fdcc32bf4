"""The supervisor's restart policy, driven by a fake clock and a fixed random source."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.supervision import BackoffPolicy, RestartDecision, RestartTracker

POLICY = BackoffPolicy()


def crash_loop(tracker: RestartTracker, crashes: int, *, at: float = 0.0) -> list[RestartDecision]:
    """Crash, wait the decided delay, restart, crash again at once; ``crashes`` times."""
    now = at
    decisions = []
    for _ in range(crashes):
        decision = tracker.on_crash(now)
        decisions.append(decision)
        now += decision.delay_s
        tracker.on_started(now)
    return decisions


def test_schedule_doubles_from_half_a_second() -> None:
    """Without jitter the delays are 0.5, 1, 2, 4, 8 s for restarts 1..5."""
    tracker = RestartTracker(POLICY, random=lambda: 0.0)
    tracker.on_started(0.0)
    decisions = crash_loop(tracker, 5)
    assert decisions == [
        RestartDecision(give_up=False, restart=1, delay_s=0.5),
        RestartDecision(give_up=False, restart=2, delay_s=1.0),
        RestartDecision(give_up=False, restart=3, delay_s=2.0),
        RestartDecision(give_up=False, restart=4, delay_s=4.0),
        RestartDecision(give_up=False, restart=5, delay_s=8.0),
    ]


def test_fixed_random_scales_by_one_plus_jitter() -> None:
    """With U = 0.5 and jitter 0.2 every delay is 1.1 times the base delay."""
    tracker = RestartTracker(POLICY, random=lambda: 0.5)
    delays = [d.delay_s for d in crash_loop(tracker, 3)]
    assert delays == pytest.approx([0.55, 1.1, 2.2])


def test_sixth_crash_within_the_window_gives_up() -> None:
    """Five restarts are allowed within 60 s; the sixth crash gives up."""
    tracker = RestartTracker(POLICY, random=lambda: 0.0)
    decisions = crash_loop(tracker, 6)
    assert [d.give_up for d in decisions] == [False] * 5 + [True]
    assert decisions[-1] == RestartDecision(give_up=True, restart=6, delay_s=0.0)


def test_crashes_spread_beyond_the_window_do_not_give_up() -> None:
    """Crashes 59 s after each restart never reach the limit, and the count keeps growing."""
    tracker = RestartTracker(POLICY, random=lambda: 0.0)
    now = 0.0
    tracker.on_started(now)
    for expected in range(1, 10):
        now += 20.0
        decision = tracker.on_crash(now)
        assert not decision.give_up
        assert decision.restart == expected
        now += decision.delay_s
        tracker.on_started(now)


def test_count_resets_after_sixty_seconds_of_stability() -> None:
    """After 60 s without a crash since the last restart, the schedule starts over."""
    tracker = RestartTracker(POLICY, random=lambda: 0.0)
    crash_loop(tracker, 4)
    assert tracker.restarts == 4
    started = 100.0
    tracker.on_started(started)
    assert tracker.on_crash(started + 59.999).restart == 5
    tracker.on_started(200.0)
    assert tracker.on_crash(260.0) == RestartDecision(give_up=False, restart=1, delay_s=0.5)


def test_delay_is_capped_at_thirty_seconds() -> None:
    """Late restarts wait the cap (30 s), times the jitter factor, never more."""
    tracker = RestartTracker(dataclasses.replace(POLICY, give_up=False), random=lambda: 0.0)
    delays = [d.delay_s for d in crash_loop(tracker, 12)]
    assert delays[6:] == [30.0] * 6
    assert delays[5] == 16.0


def test_never_giving_up_keeps_restarting() -> None:
    """With ``give_up=False`` (the service's own parts) a crash loop never gives up."""
    tracker = RestartTracker(dataclasses.replace(POLICY, give_up=False), random=lambda: 0.0)
    decisions = crash_loop(tracker, 2000)
    assert not any(d.give_up for d in decisions)
    assert decisions[-1].restart == 2000
    assert decisions[-1].delay_s == 30.0


def test_reset_forgets_everything() -> None:
    """``reset`` starts the schedule and the give-up window over."""
    tracker = RestartTracker(POLICY, random=lambda: 0.0)
    crash_loop(tracker, 6)
    tracker.reset()
    assert tracker.on_crash(10.0) == RestartDecision(give_up=False, restart=1, delay_s=0.5)


@given(
    n=st.integers(min_value=0, max_value=60),
    u=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_delay_stays_within_jitter_bounds(n: int, u: float) -> None:
    """Restart n + 1 waits within [d, 1.2 d] with d = min(30, 0.5 * 2**n)."""
    tracker = RestartTracker(dataclasses.replace(POLICY, give_up=False), random=lambda: u)
    for _ in range(n):
        tracker.on_crash(0.0)
    decision = tracker.on_crash(0.0)
    base = min(30.0, 0.5 * 2.0**n)
    assert decision.restart == n + 1
    assert base <= decision.delay_s <= base * 1.2


@given(
    n=st.integers(min_value=0, max_value=10**6),
    u=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_delay_formula_never_overflows(n: int, u: float) -> None:
    """``delay_s`` is finite and capped for any restart number."""
    delay = POLICY.delay_s(n, u)
    assert 0.5 <= delay <= 36.0


@pytest.mark.parametrize(
    "bad",
    [
        {"base_s": 0.0},
        {"cap_s": 0.1},
        {"jitter": -0.1},
        {"reset_after_s": 0.0},
        {"window_s": -1.0},
        {"max_restarts": -1},
    ],
)
def test_nonsense_policy_is_rejected(bad: dict[str, float]) -> None:
    """A policy that cannot work is refused at construction."""
    with pytest.raises(ValueError, match="backoff"):
        BackoffPolicy(**bad)  # type: ignore[arg-type]
