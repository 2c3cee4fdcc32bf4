"""The per-DC circuit breaker's state machine, on an injected clock and random source."""

from __future__ import annotations

import pytest

from actors.telegram import BreakerOpenError, BreakerPolicy, DcBreakers, DcChange


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breakers(clock: Clock, jitter_draw: float = 0.0, **policy: float) -> DcBreakers:
    settings = {"failures": 3, "window_s": 10.0, "cool_down_s": 2.0, "max_cool_down_s": 8.0}
    settings.update(policy)
    return DcBreakers(
        BreakerPolicy(**settings),  # type: ignore[arg-type]
        clock=clock,
        random=lambda: jitter_draw,
    )


def fail(b: DcBreakers, dc: int, times: int) -> None:
    for _ in range(times):
        b.admit(dc)
        b.failed(dc)


def test_opens_after_n_failures_in_a_row_and_fails_fast() -> None:
    """N connection failures open the breaker: the next admit raises with retry_after_s."""
    clock = Clock()
    b = breakers(clock)
    fail(b, 2, 2)
    b.admit(2)  # still closed after two
    b.failed(2)
    with pytest.raises(BreakerOpenError) as caught:
        b.admit(2)
    assert caught.value.dc == 2
    assert caught.value.retry_after_s == 2.0
    assert b.retry_after(2) == 2.0
    assert b.changes() == ([DcChange(2, up=False, failures=3, retry_after_s=2.0)], 1)


def test_other_dcs_are_not_affected() -> None:
    """One DC's breaker says nothing about another's."""
    b = breakers(Clock())
    fail(b, 2, 3)
    b.admit(4)
    assert b.retry_after(4) is None


def test_a_success_resets_the_count() -> None:
    """Failures must be consecutive: a success between them starts the count again."""
    b = breakers(Clock())
    fail(b, 2, 2)
    b.admit(2)
    b.succeeded(2)
    fail(b, 2, 2)
    b.admit(2)  # only two since the success
    assert b.changes() == ([], 0)


def test_failures_outside_the_window_do_not_count() -> None:
    """Failures older than window_s are forgotten."""
    clock = Clock()
    b = breakers(clock)
    fail(b, 2, 2)
    clock.now += 10.5
    fail(b, 2, 2)
    b.admit(2)


def test_one_half_open_probe_after_the_cool_down_then_closed_on_success() -> None:
    """After the cool-down one connection is let through; others still fail fast; its success
    closes the breaker and records how long the DC was down."""
    clock = Clock()
    b = breakers(clock)
    fail(b, 2, 3)
    clock.now += 1.9
    with pytest.raises(BreakerOpenError):
        b.admit(2)
    clock.now += 0.1
    b.admit(2)  # the probe
    assert b.states()[0].state == "half_open"
    with pytest.raises(BreakerOpenError):
        b.admit(2)  # a second caller while the probe runs
    b.succeeded(2)
    b.admit(2)
    assert b.states()[0].state == "closed"
    changes, last = b.changes(1)
    assert changes == [DcChange(2, up=True, down_s=2.0)]
    assert last == 2


def test_a_failed_probe_doubles_the_cool_down_up_to_the_cap() -> None:
    """Each failed probe opens the breaker again for twice as long, capped."""
    clock = Clock()
    b = breakers(clock)
    fail(b, 2, 3)
    seen = []
    for _ in range(4):
        clock.now += b.retry_after(2) or 0.0
        b.admit(2)
        b.failed(2)
        seen.append(b.retry_after(2))
    assert seen == [4.0, 8.0, 8.0, 8.0]
    assert len(b.changes()[0]) == 1  # still the one opening: failed probes are no news


def test_jitter_comes_from_the_injected_random() -> None:
    """The cool-down grows by up to ``jitter`` times itself, drawn from ``random``."""
    b = breakers(Clock(), jitter_draw=0.5, jitter=0.2)
    fail(b, 2, 3)
    assert b.retry_after(2) == pytest.approx(2.2)


def test_an_abandoned_probe_lets_the_next_connection_probe() -> None:
    """A cancelled probe leaves no half-open breaker stuck: the next admit probes at once."""
    clock = Clock()
    b = breakers(clock)
    fail(b, 2, 3)
    clock.now += 2.0
    b.admit(2)
    b.abandoned(2)
    b.admit(2)
    assert b.states()[0].state == "half_open"


def test_success_closes_from_any_state_once() -> None:
    """Closing is recorded once; a success on a closed breaker records nothing."""
    clock = Clock()
    b = breakers(clock)
    b.admit(2)
    b.succeeded(2)
    fail(b, 2, 3)
    clock.now += 2.0
    b.admit(2)
    b.succeeded(2)
    b.succeeded(2)
    assert [c.up for c in b.changes()[0]] == [False, True]


@pytest.mark.anyio
async def test_changed_wakes_for_a_change_after_the_given_number() -> None:
    """``changed(after)`` returns at once when a newer change exists (no lost wake-up)."""
    b = breakers(Clock())
    fail(b, 2, 3)
    await b.changed(0)  # already there: returns at once
    _, last = b.changes()
    assert last == 1


def test_policy_is_checked() -> None:
    """Nonsense settings are refused."""
    with pytest.raises(ValueError, match="failures"):
        BreakerPolicy(failures=0)
    with pytest.raises(ValueError, match="max_cool_down_s"):
        BreakerPolicy(cool_down_s=5, max_cool_down_s=1)


@pytest.mark.anyio
async def test_the_telethon_adapter_stops_dialling_a_dc_that_refuses() -> None:
    """Two refused connections to DC 1 open its breaker: the third open_client fails fast
    with BreakerOpenError before any dial; a tenant's proxy is another path (not refused)."""
    import socket

    import anyio

    from actors.telegram import Proxy, TelegramUnavailableError, TelethonTelegram

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = Clock()
    b = breakers(clock, failures=2)
    adapter = TelethonTelegram(
        api_id=1, api_hash="h", dc=(1, "127.0.0.1", port), request_timeout=3, breakers=b
    )
    assert adapter.retry_after() is None
    with anyio.fail_after(20):
        for _ in range(2):
            with pytest.raises(TelegramUnavailableError) as failed:
                async with adapter.open_client("acme"):
                    pass
            assert not isinstance(failed.value, BreakerOpenError)
        with pytest.raises(BreakerOpenError):
            async with adapter.open_client("acme"):
                pass
        assert adapter.retry_after() == 2.0
        proxy = Proxy.parse(f"socks5://127.0.0.1:{port}")
        with pytest.raises(TelegramUnavailableError) as through_proxy:
            async with adapter.open_client("acme", proxy=proxy):
                pass
        assert not isinstance(through_proxy.value, BreakerOpenError)
