"""Progress of long work on a terminal: count, rate and ETA on one line of stderr, redrawn.

Quiet unless stderr is a terminal (piped, redirected, under a supervisor: nothing), and the
commands pass ``enabled=False`` with ``--json``. The clock is injected; the line is redrawn at
most every ``every_s`` seconds, so a fast loop costs a comparison per step.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """``label: done/total (pct) rate/s ETA`` for work of ``total`` steps (0: unknown).

    ``stream``: where to draw (default stderr); ``enabled``: False to stay silent whatever the
    stream; otherwise it draws only when ``stream`` is a terminal.
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "events",
        stream: TextIO | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 0.2,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._label = label
        self._unit = unit
        self.total = total
        self.done = 0
        self._clock = clock
        self._every_s = every_s
        self._started = clock()
        self._drawn_at: float | None = None
        self._width = 0
        self.enabled = enabled and self._stream.isatty()

    def update(self, done: int) -> None:
        """``done`` steps are done (redrawn if the last drawing is old enough)."""
        self.done = done
        if not self.enabled:
            return
        now = self._clock()
        if self._drawn_at is None or now - self._drawn_at >= self._every_s:
            self._draw(now)

    def line(self, now: float) -> str:
        """The text shown at ``now``."""
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed
        text = f"{self._label}: {self.done:,}"
        if self.total:
            shown = min(self.done, self.total)
            text += f"/{self.total:,} {self._unit} ({100 * shown / self.total:.0f}%)"
        else:
            text += f" {self._unit}"
        text += f", {rate:,.0f}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {_duration((self.total - self.done) / rate)}"
        elif self.done >= self.total > 0:
            text += f", {_duration(elapsed)}"
        return text

    def _draw(self, now: float) -> None:
        text = self.line(now)
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)
        self._drawn_at = now

    def close(self) -> None:
        """Draw the final figures and end the line (nothing when silent)."""
        if self.enabled:
            self._draw(self._clock())
            self._stream.write("\n")
            self._stream.flush()
            self.enabled = False
