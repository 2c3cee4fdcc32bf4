"""TelegramPort: the few Telegram operations a login actor needs, in our own terms.

Adapters: :mod:`actors.telegram.telethon_adapter` (real Telegram or the simulator) and
:mod:`actors.telegram.fake` (in-process). One contract suite
(``tests/telegram/test_contract.py``) holds both to the behaviour described here.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from .proxy import Proxy

__all__ = [
    "Device",
    "ExportResult",
    "FloodWaitError",
    "LoginMigrate",
    "LoginSuccess",
    "LoginToken",
    "PasswordInvalidError",
    "PasswordNeeded",
    "ProxyAuthError",
    "ProxyUnreachableError",
    "SessionRevokedError",
    "TelegramClientPort",
    "TelegramConfigError",
    "TelegramError",
    "TelegramPort",
    "TelegramUnavailableError",
    "TokenExpiredError",
    "TokenInvalidError",
]


# --- the client's identity ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Device:
    """What a client tells Telegram about itself (``initConnection``): the user sees
    ``model`` and ``system`` (and ``app_version``) in Settings → Devices. Every field is sent;
    the defaults are the service's (``TGQR_DEVICE_*`` change them)."""

    model: str = "tgqr"
    system: str = "Linux"
    app_version: str = "1.0"
    lang: str = "en"
    system_lang: str = "en"

    def overridden(
        self, *, model: str = "", system: str = "", app_version: str = "", lang: str = ""
    ) -> Device:
        """This device with the given non-empty fields replacing its own."""
        given = {"model": model, "system": system, "app_version": app_version, "lang": lang}
        return replace(self, **{name: value for name, value in given.items() if value})

    @property
    def label(self) -> str:
        """How Telegram lists it: ``Acme Parser, Linux``."""
        return f"{self.model}, {self.system}"


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginToken:
    """A plain login token: show ``url`` as a QR until ``expires_at`` (local UTC clock,
    already corrected for the server's clock offset)."""

    token: bytes
    url: str
    expires_at: datetime
    dc_id: int


@dataclass(frozen=True, slots=True)
class LoginSuccess:
    """The client is authorized as ``user_id`` on ``dc_id``."""

    user_id: int
    dc_id: int


@dataclass(frozen=True, slots=True)
class LoginMigrate:
    """The account lives on ``dc_id``: import ``token`` there."""

    dc_id: int
    token: bytes


@dataclass(frozen=True, slots=True)
class PasswordNeeded:
    """The token was accepted but the account has 2FA (``SESSION_PASSWORD_NEEDED``)."""


ExportResult = LoginToken | LoginSuccess | LoginMigrate | PasswordNeeded


# --- errors --------------------------------------------------------------------------------


class TelegramError(Exception):
    """Base of every error a TelegramPort raises. Messages never contain secrets."""


class FloodWaitError(TelegramError):
    """Telegram asked to wait ``seconds`` before calling ``method`` again.

    The adapter never sleeps by itself; the actor decides whether to wait or give up.
    """

    def __init__(self, seconds: int, method: str) -> None:
        self.seconds = seconds
        self.method = method
        super().__init__(f"flood wait of {seconds} s on {method}")


class TokenExpiredError(TelegramError):
    """The login token expired before it was imported (re-export)."""


class TokenInvalidError(TelegramError):
    """The login token is invalid or was already accepted."""


class PasswordInvalidError(TelegramError):
    """The 2FA password was wrong."""


class SessionRevokedError(TelegramError):
    """The stored session is no longer authorized (revoked from another device)."""


class TelegramUnavailableError(TelegramError):
    """Telegram (or the simulator) could not be reached or answered with a server error."""


class TelegramConfigError(TelegramError):
    """The service's configuration is refused (``API_ID_INVALID`` and the like)."""


class ProxyUnreachableError(TelegramUnavailableError):
    """The tenant's proxy did not answer (refused, unreachable, timed out). The message names
    the proxy's label, never its credentials."""


class ProxyAuthError(TelegramError):
    """The tenant's proxy refused its user name and password."""


# --- ports ---------------------------------------------------------------------------------


class TelegramClientPort(Protocol):
    """One connected Telegram client of one tenant. Not safe for concurrent calls except
    :meth:`wait_scanned`, which may run beside any other call."""

    @property
    def dc_id(self) -> int:
        """The DC the client is connected to now."""
        ...

    async def export_token(self, except_ids: Sequence[int] = ()) -> ExportResult:
        """``auth.exportLoginToken``.

        Raises:
            FloodWaitError, TelegramUnavailableError, TelegramConfigError.
        """
        ...

    async def wait_scanned(self) -> None:
        """Block until an ``updateLoginToken`` arrives that this call has not yet reported.

        The adapter records updates for the client's whole life, so a scan that arrived
        before this call returns at once (Telethon's ``QRLogin.wait()`` loses it).
        """
        ...

    async def import_token(self, dc_id: int, token: bytes) -> ExportResult:
        """Switch to ``dc_id`` (new auth key) and ``auth.importLoginToken`` there.

        Raises:
            TokenExpiredError, TokenInvalidError, FloodWaitError, TelegramUnavailableError.
        """
        ...

    async def password_hint(self) -> str:
        """The 2FA hint (``account.getPassword``); empty if none."""
        ...

    async def check_password(self, password: str) -> LoginSuccess:
        """SRP with a fresh ``account.getPassword``, then ``auth.checkPassword``.

        Raises:
            PasswordInvalidError, FloodWaitError, TelegramUnavailableError.
        """
        ...

    async def get_me(self) -> int:
        """The authorized user's id.

        Raises:
            SessionRevokedError: the session is not (or no longer) authorized.
        """
        ...

    def session_string(self) -> str:
        """The session as a string (a secret: store it only in the vault)."""
        ...

    async def log_out(self) -> None:
        """``auth.logOut``; the session is dead afterwards."""
        ...


class TelegramPort(Protocol):
    """Opens clients. Each client is disconnected when its context exits, on every path."""

    def open_client(
        self,
        tenant: str,
        session: str | None = None,
        *,
        device: Device | None = None,
        proxy: Proxy | None = None,
    ) -> AbstractAsyncContextManager[TelegramClientPort]:
        """Connect a client (restoring ``session`` if given) for the block's duration, naming
        itself as ``device`` (None: the adapter's default device), through ``proxy`` (None:
        directly).

        Raises (on enter):
            TelegramUnavailableError (ProxyUnreachableError), ProxyAuthError,
            TelegramConfigError.
        """
        ...
