"""The Telegram port, its adapters and the in-process fake."""

# The Telethon adapter lives in actors.telegram.telethon_adapter: importing it pulls in
# Telethon, which the rest of the service does not need.

from __future__ import annotations

from ._urls import login_url, parse_login_url
from .fake import FakeStatistics, FakeTelegram, ScanError
from .port import (
    ExportResult,
    FloodWaitError,
    LoginMigrate,
    LoginSuccess,
    LoginToken,
    PasswordInvalidError,
    PasswordNeeded,
    SessionRevokedError,
    TelegramClientPort,
    TelegramConfigError,
    TelegramError,
    TelegramPort,
    TelegramUnavailableError,
    TokenExpiredError,
    TokenInvalidError,
)

__all__ = [
    "ExportResult",
    "FakeStatistics",
    "FakeTelegram",
    "FloodWaitError",
    "LoginMigrate",
    "LoginSuccess",
    "LoginToken",
    "PasswordInvalidError",
    "PasswordNeeded",
    "ScanError",
    "SessionRevokedError",
    "TelegramClientPort",
    "TelegramConfigError",
    "TelegramError",
    "TelegramPort",
    "TelegramUnavailableError",
    "TokenExpiredError",
    "TokenInvalidError",
    "login_url",
    "parse_login_url",
]
