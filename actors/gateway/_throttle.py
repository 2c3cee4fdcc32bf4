"""One log line per interval for something that repeats: a flood's drops, a slow consumer.

:class:`Repeats` counts occurrences per kind; the first one of a kind is logged at once, the
next ones at most once per interval as one line with the count since the last line. A count
left over when the repeats stop goes out with the next line of that kind, or at :meth:`flush`.
Cheap to call (a dict update and a clock read) from a nats-py callback in the read loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["LOG_EVERY_S", "Repeats"]

LOG_EVERY_S: Final = 10.0


@dataclass(slots=True)
class _Kind:
    unlogged: int = 0
    logged_at: float | None = None
    last: str = ""


@dataclass
class Repeats:
    """Counts repeats per kind and logs ``"<kind>: <n> in the last <s>s (last: <detail>)"``.

    ``detail`` must hold nothing secret: it is logged as given (cut to 160 characters).
    """

    logger: logging.Logger
    clock: Callable[[], float]
    every_s: float = LOG_EVERY_S
    level: int = logging.WARNING
    total: dict[str, int] = field(default_factory=dict)
    """Occurrences per kind since creation."""
    _kinds: dict[str, _Kind] = field(default_factory=dict, repr=False)

    def note(self, kind: str, detail: str = "") -> None:
        """Count one ``kind``; log a line if none was logged for it within the interval."""
        self.total[kind] = self.total.get(kind, 0) + 1
        state = self._kinds.get(kind)
        if state is None:
            state = self._kinds[kind] = _Kind()
        state.unlogged += 1
        state.last = detail
        now = self.clock()
        if state.logged_at is None or now - state.logged_at >= self.every_s:
            self._log(kind, state, now)

    def flush(self) -> None:
        """Log what was counted since the last line of each kind (e.g. at close)."""
        now = self.clock()
        for kind, state in self._kinds.items():
            if state.unlogged:
                self._log(kind, state, now)

    def _log(self, kind: str, state: _Kind, now: float) -> None:
        since = "" if state.logged_at is None else f" in the last {now - state.logged_at:.1f}s"
        last = f" (last: {state.last[:160]})" if state.last else ""
        self.logger.log(self.level, "%s: %d%s%s", kind, state.unlogged, since, last)
        state.unlogged = 0
        state.logged_at = now
