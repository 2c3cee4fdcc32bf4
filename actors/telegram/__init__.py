"""The Telegram port, its adapters and the in-process fake."""

from __future__ import annotations

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
    "FloodWaitError",
    "LoginMigrate",
    "LoginSuccess",
    "LoginToken",
    "PasswordInvalidError",
    "PasswordNeeded",
    "SessionRevokedError",
    "TelegramClientPort",
    "TelegramConfigError",
    "TelegramError",
    "TelegramPort",
    "TelegramUnavailableError",
    "TokenExpiredError",
    "TokenInvalidError",
]
