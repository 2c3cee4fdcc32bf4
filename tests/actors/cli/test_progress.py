"""The progress line: count, rate and ETA on a terminal, redrawn at most every so often."""

from __future__ import annotations

import io

from actors.cli._progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_count_rate_and_eta() -> None:
    """Half of 1,000 done in 10 s: 50/s and 10 s to go."""
    clock = Clock()
    progress = Progress("verifying", 1000, stream=Terminal(), clock=clock)
    progress.update(500)
    clock.now += 10
    progress.update(500)
    assert progress.line(clock.now) == "verifying: 500/1,000 events (50%), 50/s, ETA 10s"
    assert progress.line(clock.now + 3590) == "verifying: 500/1,000 events (50%), 0/s, ETA 1h00m"


def test_done_shows_the_time_taken() -> None:
    clock = Clock()
    progress = Progress("rotating", 20, unit="sessions", stream=Terminal(), clock=clock)
    clock.now += 125
    progress.update(20)
    assert progress.line(clock.now) == "rotating: 20/20 sessions (100%), 0/s, 2m05s"


def test_redrawn_at_most_every_interval_then_ended() -> None:
    """A thousand steps within the interval draw once; close draws the last figures and ends
    the line."""
    clock = Clock()
    out = Terminal()
    progress = Progress("verifying", 2000, stream=out, clock=clock, every_s=0.2)
    for n in range(1, 1001):
        progress.update(n)
    assert out.getvalue().count("\r") == 1
    clock.now += 0.5
    progress.update(2000)
    progress.close()
    text = out.getvalue()
    assert text.count("\r") == 3
    assert text.endswith("(100%), 4,000/s, 0s\n")
    progress.close()  # once only
    assert out.getvalue() == text


def test_quiet_when_piped_or_disabled() -> None:
    """Not a terminal, or ``enabled=False`` (``--json``): nothing is ever written."""
    piped = io.StringIO()
    progress = Progress("verifying", 10, stream=piped)
    progress.update(5)
    progress.close()
    assert piped.getvalue() == ""
    terminal = Terminal()
    off = Progress("verifying", 10, stream=terminal, enabled=False)
    off.update(5)
    off.close()
    assert terminal.getvalue() == ""


def test_unknown_total_counts_without_eta() -> None:
    clock = Clock()
    progress = Progress("replaying", 0, stream=Terminal(), clock=clock)
    clock.now += 2
    progress.update(10)
    assert progress.line(clock.now) == "replaying: 10 events, 5/s"
