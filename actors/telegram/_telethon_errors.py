"""Telethon's exceptions in our terms (:mod:`actors.telegram.port`). Only messages that carry
no secret are built: Telegram's error names, the method, never a request's arguments."""

from __future__ import annotations

import re

from telethon import errors

from .port import (
    FloodWaitError,
    PasswordInvalidError,
    SessionRevokedError,
    TelegramConfigError,
    TelegramError,
    TelegramUnavailableError,
    TokenExpiredError,
    TokenInvalidError,
)

__all__ = ["PasswordRequiredError", "SrpStaleError", "method_name", "translate"]


class PasswordRequiredError(SessionRevokedError):
    """``SESSION_PASSWORD_NEEDED``: the export and import turn it into ``PasswordNeeded``;
    elsewhere it means what it says, the session is not authorized."""


class SrpStaleError(TelegramUnavailableError):
    """``SRP_ID_INVALID`` / ``SRP_PASSWORD_CHANGED``: fetch ``account.getPassword`` anew."""


_TOKEN_INVALID = (
    errors.AuthTokenInvalidError,
    errors.AuthTokenInvalidxError,
    errors.AuthTokenAlreadyAcceptedError,
)
_CONFIG = (errors.ApiIdInvalidError, errors.ApiIdPublishedFloodError)
_REVOKED = (errors.UnauthorizedError, errors.AuthKeyError)
_SERVER = (errors.ServerError, errors.TimedOutError, errors.RpcCallFailError)
_TRANSPORT = (
    errors.AuthKeyNotFound,
    errors.InvalidBufferError,
    errors.SecurityError,
    ConnectionError,
    OSError,
    TimeoutError,
)

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def method_name(request: object) -> str:
    """The TL name of a Telethon request: ``ExportLoginTokenRequest`` in module
    ``...functions.auth`` gives ``auth.exportLoginToken``."""
    cls = type(request)
    name = cls.__name__.removesuffix("Request")
    namespace = cls.__module__.rsplit(".", 1)[-1]
    head = name[:1].lower() + name[1:]
    return head if namespace == "functions" else f"{namespace}.{head}"


def translate(exc: BaseException, method: str) -> TelegramError | None:
    """Our error for Telethon's ``exc`` raised by ``method``, or None when it is not a
    Telegram error (a bug: let it crash)."""
    match exc:
        case errors.FloodWaitError() | errors.FloodPremiumWaitError():
            return FloodWaitError(int(exc.seconds), method)
        case errors.SessionPasswordNeededError():
            return PasswordRequiredError(f"{method}: the account needs its 2FA password")
        case errors.AuthTokenExpiredError():
            return TokenExpiredError(f"{method}: the login token has expired")
        case errors.PasswordHashInvalidError():
            return PasswordInvalidError("the 2FA password is invalid")
        case errors.SrpIdInvalidError() | errors.SrpPasswordChangedError():
            return SrpStaleError(f"{method}: {exc.message}")
        case errors.RPCError() if isinstance(exc, _TOKEN_INVALID):
            return TokenInvalidError(f"{method}: {exc.message}")
        case errors.RPCError() if isinstance(exc, _CONFIG):
            return TelegramConfigError(f"{method}: {exc.message}")
        case errors.RPCError() if isinstance(exc, _REVOKED):
            return SessionRevokedError(f"{method}: the session is not authorized ({exc.message})")
        case errors.RPCError() if isinstance(exc, _SERVER):
            return TelegramUnavailableError(f"{method}: server error {exc.code} {exc.message}")
        case errors.RPCError():
            return TelegramError(f"{method}: {exc.code} {exc.message}")
        case _ if isinstance(exc, _TRANSPORT):
            return TelegramUnavailableError(f"{method}: {type(exc).__name__}")
        case _:
            return None
