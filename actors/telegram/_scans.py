"""Scan bookkeeping shared by the Telethon adapter and the fake: no scan is ever lost."""

from __future__ import annotations

import anyio

__all__ = ["ScanSignal"]


class ScanSignal:
    """Counts ``updateLoginToken`` arrivals for a client's whole life.

    :meth:`arrived` may run before anybody waits (the early-scan race ``QRLogin.wait()``
    loses); :meth:`wait` then returns at once. Each arrival is reported once.
    """

    __slots__ = ("_event", "_reported", "_updates")

    def __init__(self) -> None:
        self._updates = 0  # updateLoginToken received ...
        self._reported = 0  # ... and reported by wait()
        self._event: anyio.Event | None = None

    def arrived(self) -> None:
        """Record one scan and wake the waiter, if any. Never blocks."""
        self._updates += 1
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self) -> None:
        """Block until a scan arrives that has not been reported yet."""
        if self._updates == self._reported:
            while self._updates == self._reported:
                if self._event is None:
                    self._event = anyio.Event()
                await self._event.wait()
        else:
            await anyio.lowlevel.checkpoint()
        self._reported = self._updates
