"""A circuit breaker per Telegram DC: stop dialling a DC that keeps refusing connections.

Closed: every connection goes ahead; ``failures`` connection failures within ``window_s``
(none succeeding in between) open it. Open: connections fail fast (no dial) with
:class:`BreakerOpenError` until the cool-down ends. Then the next connection is the one
half-open probe (the others still fail fast); its success closes the breaker, its failure opens
it again for twice the cool-down (capped at ``max_cool_down_s``, with up to ``jitter`` more at
random so that instances sharing a DC do not probe in step).

Pure and synchronous: the clock and the random source are given (tests drive them); the
adapter calls :meth:`DcBreakers.admit` before dialling and reports the outcome.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import anyio

from .port import TelegramUnavailableError

__all__ = ["BreakerOpenError", "BreakerPolicy", "DcBreakers", "DcChange", "DcState"]

_PROBE_WAIT_S: Final = 1.0
"""What a connection refused during the half-open probe is told to wait."""


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a DC's breaker opens and for how long."""

    failures: int = 5
    window_s: float = 60.0
    cool_down_s: float = 2.0
    max_cool_down_s: float = 60.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.failures < 1 or self.window_s <= 0 or self.cool_down_s <= 0:
            raise ValueError("failures must be >= 1, window_s and cool_down_s positive")
        if self.max_cool_down_s < self.cool_down_s or not 0 <= self.jitter <= 1:
            raise ValueError("max_cool_down_s must be >= cool_down_s, jitter within 0..1")


class BreakerOpenError(TelegramUnavailableError):
    """Raised instead of dialling DC ``dc`` while its breaker is open (or its one half-open
    probe is under way): try again in ``retry_after_s`` seconds."""

    def __init__(self, dc: int, retry_after_s: float) -> None:
        self.dc = dc
        self.retry_after_s = retry_after_s
        super().__init__(f"Telegram DC {dc} is down; retry in {retry_after_s:.1f} s")


@dataclass(frozen=True, slots=True)
class DcState:
    """One DC as its breaker sees it (:meth:`DcBreakers.states`)."""

    dc: int
    state: Literal["closed", "open", "half_open"]
    failures: int
    """Consecutive failures (those that opened it, while not closed)."""
    retry_after_s: float
    """The cool-down it opened for last (0 when closed)."""
    down_since: float | None
    """Clock time it opened (None when closed)."""


@dataclass(frozen=True, slots=True)
class DcChange:
    """A breaker opened (``up`` False: after ``failures``, for ``retry_after_s``) or closed
    (``up`` True: after ``down_s`` down)."""

    dc: int
    up: bool
    failures: int = 0
    retry_after_s: float = 0.0
    down_s: float = 0.0


_KEPT: Final = 256
"""How many changes :meth:`DcBreakers.changes` keeps (a reader further behind misses some)."""


class _Breaker:
    __slots__ = ("down_since", "failures", "opens", "probing", "retry_after_s", "until")

    def __init__(self) -> None:
        self.failures: deque[float] = deque()
        self.down_since: float | None = None
        self.until = 0.0
        self.opens = 0
        self.probing = False
        self.retry_after_s = 0.0


class DcBreakers:
    """The breakers of every DC one adapter dials (created on first use, closed).

    Each opening and closing (not a failed probe that keeps it open) is numbered and kept
    (the last 256): :meth:`changes` lists those after a number, :meth:`changed` waits for one.
    """

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float],
        random: Callable[[], float],
    ) -> None:
        self._policy = policy or BreakerPolicy()
        self._clock = clock
        self._random = random
        self._dcs: dict[int, _Breaker] = {}
        self._changed: anyio.Event | None = None
        self._changes: deque[DcChange] = deque(maxlen=_KEPT)
        self._count = 0

    def _of(self, dc: int) -> _Breaker:
        return self._dcs.setdefault(dc, _Breaker())

    def retry_after(self, dc: int) -> float | None:
        """Seconds until a connection to ``dc`` may be tried (None: now). Changes nothing."""
        breaker = self._dcs.get(dc)
        if breaker is None or breaker.down_since is None:
            return None
        if breaker.probing:
            return _PROBE_WAIT_S
        left = breaker.until - self._clock()
        return left if left > 0 else None

    def admit(self, dc: int) -> None:
        """Before dialling ``dc``: returns if the connection may go ahead (open and cooled
        down: it is the half-open probe, report its outcome).

        Raises:
            BreakerOpenError: the breaker is open, or another connection is the probe.
        """
        wait = self.retry_after(dc)
        if wait is not None:
            raise BreakerOpenError(dc, round(wait, 3))
        breaker = self._of(dc)
        if breaker.down_since is not None:
            breaker.probing = True

    def succeeded(self, dc: int) -> None:
        """A connection to ``dc`` was made: the breaker closes (or stays closed)."""
        breaker = self._of(dc)
        breaker.failures.clear()
        breaker.probing = False
        if breaker.down_since is not None:
            down_s = round(max(0.0, self._clock() - breaker.down_since), 3)
            breaker.down_since = None
            breaker.opens = 0
            breaker.retry_after_s = 0.0
            self._notify(DcChange(dc, up=True, down_s=down_s))

    def failed(self, dc: int) -> None:
        """A connection to ``dc`` failed (unreachable, timed out): counted; the breaker opens
        at the ``failures``-th within the window, or again after a failed probe."""
        breaker, now, policy = self._of(dc), self._clock(), self._policy
        if breaker.down_since is not None:
            if breaker.probing:  # the probe failed: a longer cool-down
                breaker.probing = False
                self._open(breaker, now)
            return
        breaker.failures.append(now)
        while breaker.failures and breaker.failures[0] <= now - policy.window_s:
            breaker.failures.popleft()
        if len(breaker.failures) >= policy.failures:
            breaker.down_since = now
            self._open(breaker, now)
            failures = len(breaker.failures)
            self._notify(
                DcChange(dc, up=False, failures=failures, retry_after_s=breaker.retry_after_s)
            )

    def abandoned(self, dc: int) -> None:
        """The probe to ``dc`` ended without an outcome (cancelled): the next connection
        probes instead, at once."""
        breaker = self._of(dc)
        if breaker.probing:
            breaker.probing = False
            breaker.until = self._clock()

    def _open(self, breaker: _Breaker, now: float) -> None:
        policy = self._policy
        base = min(policy.max_cool_down_s, policy.cool_down_s * 2.0**breaker.opens)
        breaker.opens += 1
        breaker.retry_after_s = round(base * (1 + policy.jitter * self._random()), 3)
        breaker.until = now + breaker.retry_after_s

    def _notify(self, change: DcChange) -> None:
        self._changes.append(change)
        self._count += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def changes(self, after: int = 0) -> tuple[list[DcChange], int]:
        """The changes numbered above ``after`` (oldest first, as many as are kept) and the
        number of the last one (0: none yet)."""
        fresh = min(len(self._changes), max(0, self._count - after))
        return list(self._changes)[len(self._changes) - fresh :], self._count

    async def changed(self, after: int) -> None:
        """Block until there is a change numbered above ``after``."""
        while self._count <= after:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def states(self) -> list[DcState]:
        """Every DC dialled so far, by id."""
        out = []
        for dc, breaker in sorted(self._dcs.items()):
            state: Literal["closed", "open", "half_open"] = (
                "closed"
                if breaker.down_since is None
                else "half_open"
                if breaker.probing
                else "open"
            )
            out.append(
                DcState(
                    dc,
                    state,
                    len(breaker.failures),
                    breaker.retry_after_s,
                    breaker.down_since,
                )
            )
        return out
