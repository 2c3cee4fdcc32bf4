"""Command rate limits: a sliding window per tenant and verb, on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.gateway import RateLimiter, UnknownVerbError


def test_start_allows_five_per_minute() -> None:
    """Five starts pass, the sixth within the minute is refused."""
    limiter = RateLimiter()
    assert [limiter.check("t", "start", float(i)) for i in range(5)] == [None] * 5
    assert limiter.check("t", "start", 5.0) == pytest.approx(55.0)


def test_other_verbs_allow_thirty_per_minute() -> None:
    """password, cancel and logout each allow 30 per minute."""
    limiter = RateLimiter()
    for verb in ("password", "cancel", "logout"):
        assert all(limiter.check("t", verb, 0.0) is None for _ in range(30))
        assert limiter.check("t", verb, 0.0) == 60.0


def test_retry_after_is_the_exact_time_until_a_slot_frees() -> None:
    """The refusal says when the oldest accepted command leaves the window, and then it passes."""
    limiter = RateLimiter({"start": 2}, window_s=60.0)
    assert limiter.check("t", "start", 10.0) is None
    assert limiter.check("t", "start", 25.0) is None
    assert limiter.check("t", "start", 30.0) == 40.0
    assert limiter.check("t", "start", 69.5) == 0.5
    assert limiter.check("t", "start", 70.0) is None
    assert limiter.check("t", "start", 70.0) == 15.0


def test_window_slides_rather_than_resetting_on_the_minute() -> None:
    """A burst at the end of one minute still counts at the start of the next."""
    limiter = RateLimiter({"start": 5}, window_s=60.0)
    for t in (55.0, 56.0, 57.0, 58.0, 59.0):
        assert limiter.check("t", "start", t) is None
    # A fixed window would have reset at 60 s.
    assert limiter.check("t", "start", 61.0) == 54.0
    assert limiter.check("t", "start", 115.0) is None
    assert limiter.check("t", "start", 115.0) == 1.0


def test_refused_commands_are_not_recorded() -> None:
    """Hammering while limited does not extend the wait."""
    limiter = RateLimiter({"start": 1}, window_s=10.0)
    assert limiter.check("t", "start", 0.0) is None
    for t in range(1, 10):
        assert limiter.check("t", "start", float(t)) == 10.0 - t
    assert limiter.check("t", "start", 10.0) is None


def test_tenants_and_verbs_are_independent() -> None:
    """One tenant's (or verb's) exhausted limit does not touch another's."""
    limiter = RateLimiter({"start": 1, "cancel": 1})
    assert limiter.check("a", "start", 0.0) is None
    assert limiter.check("a", "start", 0.0) is not None
    assert limiter.check("b", "start", 0.0) is None
    assert limiter.check("a", "cancel", 0.0) is None


def test_unknown_verb_is_an_error() -> None:
    """A verb without a limit is refused loudly rather than let through."""
    with pytest.raises(UnknownVerbError):
        RateLimiter().check("t", "reboot", 0.0)


def test_memory_stays_bounded_across_many_tenants() -> None:
    """Windows of tenants that went quiet are dropped; recorded times never exceed the limits."""
    limiter = RateLimiter(window_s=60.0)
    now = 0.0
    for minute in range(20):
        for i in range(5000):
            now = minute * 60.0 + i * 0.01
            limiter.check(f"tenant-{minute}-{i}", "start", now)
        assert limiter.statistics().windows <= 10_000
    limiter.check("late", "start", now + 120.0)
    assert limiter.statistics().windows == 1
    assert limiter.statistics().recorded == 1


@pytest.mark.parametrize(("limits", "window"), [({"start": 0}, 60.0), ({"start": 1}, 0.0)])
def test_nonsense_configuration_is_rejected(limits: dict[str, int], window: float) -> None:
    """A zero limit or a non-positive window is refused at construction."""
    with pytest.raises(ValueError, match="rate limit"):
        RateLimiter(limits, window_s=window)


@given(
    limit=st.integers(min_value=1, max_value=8),
    gaps=st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=60),
)
def test_never_more_than_limit_in_any_window(limit: int, gaps: list[float]) -> None:
    """Accepted times never put more than ``limit`` in any window; refusals are exact."""
    window = 10.0
    limiter = RateLimiter({"v": limit}, window_s=window)
    now = 0.0
    accepted: list[float] = []
    for gap in gaps:
        now += gap
        retry = limiter.check("t", "v", now)
        recent = [t for t in accepted if t > now - window]
        if retry is None:
            assert len(recent) < limit
            accepted.append(now)
        else:
            assert len(recent) == limit
            assert retry == pytest.approx(recent[0] + window - now)
            assert retry > 0
