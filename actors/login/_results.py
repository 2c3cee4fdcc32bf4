"""The result switch of an export, and Telegram errors as observations.

The second export returns a plain token (keep going), ``LoginTokenSuccess``, a need for the 2FA
password, or ``LoginTokenMigrateTo`` (switch DC, import there; re-export if the token expired
meanwhile). :func:`follow_result` walks that switch for an attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from actors.telegram import (
    ExportResult,
    LoginMigrate,
    LoginSuccess,
    LoginToken,
    PasswordNeeded,
    ProxyAuthError,
    ProxyUnreachableError,
    SessionRevokedError,
    TelegramClientPort,
    TelegramConfigError,
    TelegramError,
    TokenExpiredError,
    TokenInvalidError,
)

from ._inputs import (
    ConfigRefused,
    Observation,
    PasswordNeededSeen,
    ProxyDown,
    ProxyRefused,
    SessionRevoked,
    TelegramDown,
    TokenExported,
    TokenRefused,
)
from ._state import LoginState

__all__ = ["GaveUpError", "follow_result", "observation_of"]

_log = logging.getLogger("tgqr.actor")
_T = TypeVar("_T")
_MAX_REEXPORTS = 3


class GaveUpError(Exception):
    """Raised inside an attempt when a flood wait ended it (``LoginFailed`` is stored)."""


class Shell(Protocol):
    """What the result switch needs of an attempt."""

    async def call(self, call: Callable[[], Awaitable[_T]], method: str) -> _T: ...

    async def report(self, observation: Observation) -> LoginState: ...

    async def save_pre_auth(self, client: TelegramClientPort) -> None: ...

    async def keep_key(self, client: TelegramClientPort) -> None: ...

    async def succeed(self, client: TelegramClientPort, user_id: int, dc_id: int) -> None: ...


async def follow_result(
    shell: Shell, client: TelegramClientPort, result: ExportResult, reexports: int = 0
) -> None:
    """Act on one export (or import) result.

    Raises:
        TelegramError: Telegram refused (the attempt turns it into an observation).
        GaveUpError: a flood wait ended the attempt.
    """
    match result:
        case LoginToken():
            await shell.keep_key(client)
            await shell.report(TokenExported(result.url, result.expires_at, result.dc_id))
        case LoginSuccess():
            await shell.succeed(client, result.user_id, result.dc_id)
        case PasswordNeeded():
            hint = await shell.call(client.password_hint, "account.getPassword")
            # Saved before the event, so that a restarted actor can finish the 2FA.
            await shell.save_pre_auth(client)
            await shell.report(PasswordNeededSeen(hint))
        case LoginMigrate():
            _log.info("migrating to dc=%d", result.dc_id)
            dc_id, token = result.dc_id, result.token
            try:
                imported = await shell.call(
                    lambda: client.import_token(dc_id, token), "auth.importLoginToken"
                )
            except TokenExpiredError:
                if reexports >= _MAX_REEXPORTS:
                    raise
                again = await shell.call(client.export_token, "auth.exportLoginToken")
                await follow_result(shell, client, again, reexports + 1)
                return
            if isinstance(imported, LoginMigrate):
                raise TokenInvalidError("the import asked for another migration")
            await follow_result(shell, client, imported, reexports)


def observation_of(exc: TelegramError) -> Observation:
    """What a Telegram error that ends an attempt means to the machine."""
    match exc:
        case TelegramConfigError():
            return ConfigRefused()
        case TokenInvalidError() | TokenExpiredError():
            return TokenRefused()
        case SessionRevokedError():
            return SessionRevoked()
        case ProxyAuthError():
            return ProxyRefused()
        case ProxyUnreachableError():
            return ProxyDown()
    return TelegramDown()
