"""The client side of :mod:`actors.telegram.fake`: one tenant's connection, a few slots."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

from ._scans import ScanSignal
from ._urls import login_url
from .port import (
    ExportResult,
    LoginMigrate,
    LoginSuccess,
    LoginToken,
    PasswordInvalidError,
    PasswordNeeded,
    SessionRevokedError,
    TelegramUnavailableError,
    TokenExpiredError,
    TokenInvalidError,
)

if TYPE_CHECKING:
    from .fake import FakeTelegram


class KeyState:
    """What the server knows about one auth key: its DC and whom it is logged in as."""

    __slots__ = ("dc_id", "key", "pending_user", "user_id")

    def __init__(self, dc_id: int) -> None:
        self.dc_id = dc_id
        self.user_id: int | None = None  # authorized as
        self.pending_user: int | None = None  # accepted, waiting for the 2FA password
        self.key: str | None = None  # the session string, once someone asked for it

    def __repr__(self) -> str:  # never the key
        return f"KeyState(dc_id={self.dc_id}, user_id={self.user_id})"


class Token:
    """A login token: exported by ``client`` (or, for a migration, bound to ``accepted_by``)."""

    __slots__ = ("accepted_by", "client", "dc_id", "expires_at", "migrate", "raw")

    def __init__(
        self,
        raw: bytes,
        client: FakeClient,
        expires_at: datetime,
        dc_id: int,
        accepted_by: int | None,
    ) -> None:
        self.raw = raw
        self.client = client
        self.expires_at = expires_at
        self.dc_id = dc_id
        self.accepted_by = accepted_by
        self.migrate = False

    def url(self) -> str:
        return login_url(self.raw)


class FakeClient:
    """A fake :class:`~actors.telegram.port.TelegramClientPort`, also its own context manager.

    Every call is a checkpoint (cancellable), then raises whatever was scripted with
    ``flood_next``/``fail_next`` for its TL method. Calls after the block exits raise
    :class:`TelegramUnavailableError`.
    """

    __slots__ = ("_open", "_scans", "_state", "_tg", "tenant", "token")

    def __init__(self, tg: FakeTelegram, tenant: str, state: KeyState) -> None:
        self._tg = tg
        self.tenant = tenant
        self._state = state
        self.token: Token | None = None  # the latest exported token
        self._scans = ScanSignal()
        self._open = False

    def __repr__(self) -> str:
        return f"FakeClient(tenant={self.tenant!r}, dc_id={self._state.dc_id})"

    async def __aenter__(self) -> Self:
        await self._tg._call("connect")
        self._open = True
        self._tg._opened(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._open:
            self._open = False
            self._tg._closed(self)

    @property
    def dc_id(self) -> int:
        return self._state.dc_id

    async def export_token(self, except_ids: Sequence[int] = ()) -> ExportResult:
        await self._call("auth.exportLoginToken")
        tg, state = self._tg, self._state
        tg._count("exports")
        if state.user_id is not None:
            return LoginSuccess(state.user_id, state.dc_id)
        if state.pending_user is not None:
            return PasswordNeeded()
        token = self.token
        if token is not None:
            tg._drop_token(token)
            self.token = None
            user_id = token.accepted_by
            if user_id is not None and user_id not in except_ids:
                user_dc = tg._user_dc(user_id)
                if user_dc != state.dc_id:
                    migrate = self.token = tg._new_token(self, user_dc, accepted_by=user_id)
                    return LoginMigrate(user_dc, migrate.raw)
                return self._authorize(user_id)
        token = self.token = tg._new_token(self, state.dc_id)
        return LoginToken(token.raw, token.url(), token.expires_at, state.dc_id)

    async def wait_scanned(self) -> None:
        await self._scans.wait()

    async def import_token(self, dc_id: int, token: bytes) -> ExportResult:
        await self._call("auth.importLoginToken")
        tg = self._tg
        if not tg._has_dc(dc_id):
            raise TelegramUnavailableError(f"unknown DC {dc_id}")
        if dc_id != self._state.dc_id:
            self._state = KeyState(dc_id)  # a new DC means a new auth key
        tg._count("imports")
        found = tg._find_raw_token(token)
        user_id = None if found is None or not found.migrate else found.accepted_by
        if found is None or user_id is None or found.dc_id != dc_id:
            raise TokenInvalidError("the login token is invalid")
        tg._drop_token(found)
        if self.token is found:
            self.token = None
        if found.expires_at <= tg._now():
            raise TokenExpiredError("the login token has expired")
        return self._authorize(user_id)

    async def password_hint(self) -> str:
        await self._call("account.getPassword")
        pending = self._state.pending_user
        return "" if pending is None else self._tg._user_secret(pending)[1]

    async def check_password(self, password: str) -> LoginSuccess:
        await self._call("account.getPassword")
        await self._call("auth.checkPassword")
        tg, state = self._tg, self._state
        tg._count("checks")
        if state.pending_user is None:
            raise PasswordInvalidError("no 2FA password is pending")
        expected = tg._user_secret(state.pending_user)[0] or ""
        if not secrets.compare_digest(expected.encode(), password.encode()):
            raise PasswordInvalidError("the 2FA password is invalid")
        user_id, state.pending_user = state.pending_user, None
        return self._login(user_id)

    async def get_me(self) -> int:
        await self._call("users.getUsers")
        if self._state.user_id is None:
            raise SessionRevokedError("the session is not authorized")
        return self._state.user_id

    def session_string(self) -> str:
        return self._tg._remember_key(self._state)

    async def log_out(self) -> None:
        await self._call("auth.logOut")
        state = self._state
        state.user_id = state.pending_user = None
        self._tg._forget_key(state)

    # --- internals --------------------------------------------------------------------------

    def _notify_scanned(self) -> None:
        self._scans.arrived()

    async def _call(self, method: str) -> None:
        if not self._open:
            raise TelegramUnavailableError("the client is closed")
        await self._tg._call(method)

    def _authorize(self, user_id: int) -> ExportResult:
        if self._tg._user_secret(user_id)[0]:
            self._state.pending_user = user_id
            return PasswordNeeded()
        return self._login(user_id)

    def _login(self, user_id: int) -> LoginSuccess:
        state = self._state
        state.user_id = user_id
        self._tg._count("logins")
        self._tg._remember_key(state)  # so that revoke() finds it
        return LoginSuccess(user_id, state.dc_id)
