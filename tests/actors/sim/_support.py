"""Shared helpers of the simulator tests."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from telethon import TelegramClient

API_ID = 12345
API_HASH = "0123456789abcdef0123456789abcdef"

OpenClient = Callable[..., AbstractAsyncContextManager[TelegramClient]]


class FakeClock:
    """A business clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
