"""The supervisor's restart policy: exponential backoff with jitter, reset, and give-up.

Restart ``n`` (``n = 0, 1, 2, ...`` since the last reset) waits
``min(cap_s, base_s * 2**n) * (1 + jitter * U)`` with ``U`` from an injected ``U[0, 1)`` source.
The count resets after ``reset_after_s`` without a crash since the last (re)start; more than
``max_restarts`` crashes within ``window_s`` give up (unless the policy never gives up, as for
the service's own parts). Pure: no clock, no IO; times are passed in by the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BackoffPolicy", "RestartDecision", "RestartTracker"]

# 2**1000 * any sane base is still a finite float; the cap applies long before.
_MAX_EXPONENT = 1000


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Restart timing (seconds). ``give_up=False`` keeps restarting forever at the cap.

    Raises:
        ValueError: on construction, for a non-positive base, window or reset time, a cap below
            the base, a negative jitter or a negative ``max_restarts``.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    jitter: float = 0.2
    reset_after_s: float = 60.0
    max_restarts: int = 5
    window_s: float = 60.0
    give_up: bool = True

    def __post_init__(self) -> None:
        if not self.base_s > 0 or not self.cap_s >= self.base_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        if not self.jitter >= 0:
            raise ValueError("backoff jitter must be >= 0")
        if not self.reset_after_s > 0 or not self.window_s > 0:
            raise ValueError("backoff reset_after_s and window_s must be > 0")
        if self.max_restarts < 0:
            raise ValueError("backoff max_restarts must be >= 0")

    def delay_s(self, n: int, u: float) -> float:
        """The delay before restart ``n`` (0-based) for a uniform draw ``u`` in ``[0, 1)``."""
        return min(self.cap_s, self.base_s * 2.0 ** min(n, _MAX_EXPONENT)) * (1 + self.jitter * u)


@dataclass(frozen=True, slots=True)
class RestartDecision:
    """What to do after a crash: give up, or restart (``restart`` is 1-based) after ``delay_s``.

    When giving up, ``restart`` is the restart that was refused and ``delay_s`` is 0.
    """

    give_up: bool
    restart: int
    delay_s: float


class RestartTracker:
    """The restart state of one supervised child (one tenant's actor, or a service part).

    Call :meth:`on_started` whenever the child (re)starts and :meth:`on_crash` when it fails.
    ``now`` is any monotonic clock in seconds, never decreasing between calls.
    """

    def __init__(self, policy: BackoffPolicy, random: Callable[[], float]) -> None:
        self._policy = policy
        self._random = random
        self._count = 0
        self._started_at: float | None = None
        # Crash times within the window (only when giving up); at most max_restarts + 1.
        self._crashes: deque[float] = deque()

    @property
    def policy(self) -> BackoffPolicy:
        return self._policy

    @property
    def restarts(self) -> int:
        """Restarts decided since the last reset."""
        return self._count

    def on_started(self, now: float) -> None:
        """Record that the child (re)started at ``now``: the stability period runs from here."""
        self._started_at = now

    def on_crash(self, now: float) -> RestartDecision:
        """Decide about a crash at ``now`` (draws one random number when restarting)."""
        policy = self._policy
        if self._started_at is not None and now - self._started_at >= policy.reset_after_s:
            self._count = 0
            self._crashes.clear()
        if policy.give_up:
            horizon = now - policy.window_s
            while self._crashes and self._crashes[0] <= horizon:
                self._crashes.popleft()
            self._crashes.append(now)
            while len(self._crashes) > policy.max_restarts + 1:
                self._crashes.popleft()
            if len(self._crashes) > policy.max_restarts:
                return RestartDecision(give_up=True, restart=self._count + 1, delay_s=0.0)
        delay = policy.delay_s(self._count, self._random())
        self._count += 1
        return RestartDecision(give_up=False, restart=self._count, delay_s=delay)

    def reset(self) -> None:
        """Forget every crash and restart (for a child that starts afresh, e.g. a new login)."""
        self._count = 0
        self._started_at = None
        self._crashes.clear()
