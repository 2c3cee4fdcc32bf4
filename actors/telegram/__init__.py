"""The Telegram port, its adapters and the in-process fake.

``TelethonTelegram`` (and the simulator's credentials) are imported from
:mod:`.telethon_adapter` on first use: importing Telethon is slow, and the rest of the service,
the fake and the tests of the pure parts do not need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._breaker import BreakerOpenError, BreakerPolicy, DcBreakers, DcChange, DcState
from ._breaker_log import record_breaker_changes
from ._urls import login_url, parse_login_url
from .fake import FakeStatistics, FakeTelegram, ScanError
from .port import (
    Device,
    ExportResult,
    FloodWaitError,
    LoginMigrate,
    LoginSuccess,
    LoginToken,
    PasswordInvalidError,
    PasswordNeeded,
    ProxyAuthError,
    ProxyUnreachableError,
    SessionRevokedError,
    TelegramClientPort,
    TelegramConfigError,
    TelegramError,
    TelegramPort,
    TelegramUnavailableError,
    TokenExpiredError,
    TokenInvalidError,
)
from .proxy import Proxy, ProxyUrlError

if TYPE_CHECKING:
    from .telethon_adapter import SIMULATOR_API_HASH, SIMULATOR_API_ID, TelethonTelegram

__all__ = [
    "SIMULATOR_API_HASH",
    "SIMULATOR_API_ID",
    "BreakerOpenError",
    "BreakerPolicy",
    "DcBreakers",
    "DcChange",
    "DcState",
    "Device",
    "ExportResult",
    "FakeStatistics",
    "FakeTelegram",
    "FloodWaitError",
    "LoginMigrate",
    "LoginSuccess",
    "LoginToken",
    "PasswordInvalidError",
    "PasswordNeeded",
    "Proxy",
    "ProxyAuthError",
    "ProxyUnreachableError",
    "ProxyUrlError",
    "ScanError",
    "SessionRevokedError",
    "TelegramClientPort",
    "TelegramConfigError",
    "TelegramError",
    "TelegramPort",
    "TelegramUnavailableError",
    "TelethonTelegram",
    "TokenExpiredError",
    "TokenInvalidError",
    "login_url",
    "parse_login_url",
    "record_breaker_changes",
]

_LAZY = frozenset({"SIMULATOR_API_HASH", "SIMULATOR_API_ID", "TelethonTelegram"})

if not TYPE_CHECKING:  # mypy reads the imports above; a visible hook would make any name Any

    def __getattr__(name: str) -> Any:
        """The Telethon adapter's names, imported (with Telethon) when first asked for."""
        if name in _LAZY:
            from . import telethon_adapter

            return getattr(telethon_adapter, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
