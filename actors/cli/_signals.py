"""How the long-running commands (``up``, ``sim serve``, ``cluster``) wait to be stopped."""

from __future__ import annotations

import signal

import anyio

__all__ = ["until_stopped"]


async def until_stopped() -> None:
    """Until SIGINT or SIGTERM; says which, as "stopping (SIGTERM)...", then returns."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            print(f"stopping ({signal.Signals(signum).name})...", flush=True)
            return
