"""The client side of :mod:`actors.telegram.fake`: one tenant's connection, a few slots.

A :class:`FakeClient` knows its server only as a :class:`Server`: the few questions a client
asks of Telegram's server-side state (``_fake_server.FakeServer`` answers them).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

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

__all__ = ["FakeClient", "KeyState", "Server", "Token"]


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
    """A login token: exported by a client, whose ``scans`` hear when the phone accepts it (or,
    for a migration, bound to ``accepted_by``)."""

    __slots__ = ("accepted_by", "dc_id", "expires_at", "migrate", "raw", "scans")

    def __init__(
        self,
        raw: bytes,
        scans: ScanSignal,
        expires_at: datetime,
        dc_id: int,
        accepted_by: int | None,
    ) -> None:
        self.raw = raw
        self.scans = scans
        self.expires_at = expires_at
        self.dc_id = dc_id
        self.accepted_by = accepted_by
        self.migrate = False

    def url(self) -> str:
        return login_url(self.raw)


class Server(Protocol):
    """What a :class:`FakeClient` asks of the fake Telegram's server side. Nothing blocks but
    :meth:`call` (a checkpoint)."""

    def now(self) -> datetime:
        """The server's current UTC time."""
        ...

    def count(self, name: str) -> None:
        """Add one to the statistics counter ``name``."""
        ...

    def user_dc(self, user_id: int) -> int:
        """The DC of the account ``user_id``."""
        ...

    def user_secret(self, user_id: int) -> tuple[str | None, str]:
        """The 2FA password (None: none set) and its hint of the account ``user_id``."""
        ...

    def has_dc(self, dc_id: int) -> bool:
        """Whether ``dc_id`` is one of the server's DCs."""
        ...

    async def call(self, method: str) -> None:
        """A checkpoint, then raises whatever was scripted for the TL ``method``."""
        ...

    def new_token(self, scans: ScanSignal, dc_id: int, accepted_by: int | None = None) -> Token:
        """A fresh token on ``dc_id``; a migration token when ``accepted_by`` is given."""
        ...

    def drop_token(self, token: Token) -> None:
        """Forget ``token`` (it can be neither scanned nor imported any more)."""
        ...

    def find_token(self, raw: bytes) -> Token | None:
        """The live token whose bytes are ``raw``."""
        ...

    def remember_key(self, state: KeyState) -> str:
        """The session string of ``state`` (created on first use)."""
        ...

    def forget_key(self, state: KeyState) -> None:
        """Forget ``state``'s session string: restoring it gives an unauthorized client."""
        ...

    def opened(self, client: FakeClient) -> None:
        """``client`` is connected (and the latest client of its tenant)."""
        ...

    def closed(self, client: FakeClient) -> None:
        """``client`` is disconnected; its token is dropped."""
        ...


class FakeClient:
    """A fake :class:`~actors.telegram.port.TelegramClientPort`, also its own context manager.

    Every call is a checkpoint (cancellable), then raises whatever was scripted with
    ``flood_next``/``fail_next`` for its TL method. Calls after the block exits raise
    :class:`TelegramUnavailableError`.
    """

    __slots__ = ("_open", "_scans", "_server", "_state", "tenant", "token")

    def __init__(self, server: Server, tenant: str, state: KeyState) -> None:
        self._server = server
        self.tenant = tenant
        self._state = state
        self.token: Token | None = None  # the latest exported token
        self._scans = ScanSignal()
        self._open = False

    def __repr__(self) -> str:
        return f"FakeClient(tenant={self.tenant!r}, dc_id={self._state.dc_id})"

    async def __aenter__(self) -> Self:
        await self._server.call("connect")
        self._open = True
        self._server.opened(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._open:
            self._open = False
            self._server.closed(self)

    @property
    def dc_id(self) -> int:
        return self._state.dc_id

    async def export_token(self, except_ids: Sequence[int] = ()) -> ExportResult:
        await self._call("auth.exportLoginToken")
        server, state = self._server, self._state
        server.count("exports")
        if state.user_id is not None:
            return LoginSuccess(state.user_id, state.dc_id)
        if state.pending_user is not None:
            return PasswordNeeded()
        token = self.token
        if token is not None:
            server.drop_token(token)
            self.token = None
            user_id = token.accepted_by
            if user_id is not None and user_id not in except_ids:
                user_dc = server.user_dc(user_id)
                if user_dc != state.dc_id:
                    migrate = self.token = server.new_token(
                        self._scans, user_dc, accepted_by=user_id
                    )
                    return LoginMigrate(user_dc, migrate.raw)
                return self._authorize(user_id)
        token = self.token = server.new_token(self._scans, state.dc_id)
        return LoginToken(token.raw, token.url(), token.expires_at, state.dc_id)

    async def wait_scanned(self) -> None:
        await self._scans.wait()

    async def import_token(self, dc_id: int, token: bytes) -> ExportResult:
        await self._call("auth.importLoginToken")
        server = self._server
        if not server.has_dc(dc_id):
            raise TelegramUnavailableError(f"unknown DC {dc_id}")
        if dc_id != self._state.dc_id:
            self._state = KeyState(dc_id)  # a new DC means a new auth key
        server.count("imports")
        found = server.find_token(token)
        user_id = None if found is None or not found.migrate else found.accepted_by
        if found is None or user_id is None or found.dc_id != dc_id:
            raise TokenInvalidError("the login token is invalid")
        server.drop_token(found)
        if self.token is found:
            self.token = None
        if found.expires_at <= server.now():
            raise TokenExpiredError("the login token has expired")
        return self._authorize(user_id)

    async def password_hint(self) -> str:
        await self._call("account.getPassword")
        pending = self._state.pending_user
        return "" if pending is None else self._server.user_secret(pending)[1]

    async def check_password(self, password: str) -> LoginSuccess:
        await self._call("account.getPassword")
        await self._call("auth.checkPassword")
        server, state = self._server, self._state
        server.count("checks")
        if state.pending_user is None:
            raise PasswordInvalidError("no 2FA password is pending")
        expected = server.user_secret(state.pending_user)[0] or ""
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
        return self._server.remember_key(self._state)

    async def log_out(self) -> None:
        await self._call("auth.logOut")
        state = self._state
        state.user_id = state.pending_user = None
        self._server.forget_key(state)

    # --- internals --------------------------------------------------------------------------

    async def _call(self, method: str) -> None:
        if not self._open:
            raise TelegramUnavailableError("the client is closed")
        await self._server.call(method)

    def _authorize(self, user_id: int) -> ExportResult:
        if self._server.user_secret(user_id)[0]:
            self._state.pending_user = user_id
            return PasswordNeeded()
        return self._login(user_id)

    def _login(self, user_id: int) -> LoginSuccess:
        state = self._state
        state.user_id = user_id
        self._server.count("logins")
        self._server.remember_key(state)  # so that revoke() finds it
        return LoginSuccess(user_id, state.dc_id)
