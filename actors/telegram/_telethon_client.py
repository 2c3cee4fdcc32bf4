"""One Telethon client behind :class:`~actors.telegram.port.TelegramClientPort`: the raw QR
login requests, the throttle, the request timeout and Telethon's errors in our terms.

Opened (and closed) by :class:`~.telethon_adapter.TelethonTelegram`, which hands it the
:class:`ClientSettings` it needs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from telethon import events, functions, types
from telethon.password import compute_check

from ._scans import ScanSignal
from ._telethon_errors import PasswordRequiredError, SrpStaleError, method_name, translate
from ._urls import login_url
from .port import (
    ExportResult,
    LoginMigrate,
    LoginSuccess,
    LoginToken,
    PasswordInvalidError,
    PasswordNeeded,
    SessionRevokedError,
    TelegramError,
    TelegramUnavailableError,
    TokenInvalidError,
)

__all__ = ["ClientSettings", "TelethonClient"]

_T = TypeVar("_T")
_SRP_TRIES = 2


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What every client of one adapter shares; the repr leaves out the api_hash."""

    api_id: int
    api_hash: str = field(repr=False)
    throttle: tuple[float, float]  # (low, high) seconds between a client's requests
    rng: random.Random = field(repr=False)
    sleep: Callable[[float], Awaitable[None]] = field(repr=False)
    timeout: float  # bounds connecting and every request


class TelethonClient:
    """One client (:class:`~actors.telegram.port.TelegramClientPort`) over a Telethon client.

    Its ``updateLoginToken`` handler is registered here, before :meth:`connect`, and stays for
    the client's whole life, so that no scan is lost.
    """

    def __init__(self, client: Any, settings: ClientSettings, tenant: str) -> None:
        self._client = client
        self._settings = settings
        self._tenant = tenant
        self._requests = 0
        self._scans = ScanSignal()
        self._logged_out = False
        client.add_event_handler(self._on_login_token, events.Raw(types.UpdateLoginToken))

    def __repr__(self) -> str:  # never the session
        return f"TelethonClient(tenant={self._tenant!r}, dc_id={self.dc_id})"

    @property
    def dc_id(self) -> int:
        return int(self._client.session.dc_id)

    async def connect(self) -> None:
        """Connect to the session's DC within the request timeout (no throttle pause).

        Raises:
            TelegramUnavailableError: unreachable, or no answer in time.
            TelegramConfigError: Telegram refused the api_id.
        """
        await self._guard("connect", self._client.connect)

    async def export_token(self, except_ids: Sequence[int] = ()) -> ExportResult:
        settings = self._settings
        request = functions.auth.ExportLoginTokenRequest(
            settings.api_id, settings.api_hash, list(except_ids)
        )
        try:
            return await self._result(await self._request(request))
        except PasswordRequiredError:
            return PasswordNeeded()

    async def wait_scanned(self) -> None:
        await self._scans.wait()

    async def import_token(self, dc_id: int, token: bytes) -> ExportResult:
        if dc_id != self.dc_id:
            await self._pause()
            try:
                await self._guard("connect", lambda: self._client._switch_dc(dc_id))
            except ValueError as exc:  # Telethon: "Failed to get DC n"
                raise TelegramUnavailableError(f"unknown DC {dc_id}") from exc
        try:
            return await self._result(
                await self._request(functions.auth.ImportLoginTokenRequest(token))
            )
        except PasswordRequiredError:
            return PasswordNeeded()

    async def password_hint(self) -> str:
        password = await self._request(functions.account.GetPasswordRequest())
        return str(password.hint or "")

    async def check_password(self, password: str) -> LoginSuccess:
        for attempt in range(_SRP_TRIES):
            current = await self._request(functions.account.GetPasswordRequest())
            if not current.has_password:
                raise PasswordInvalidError("the account has no 2FA password")
            try:
                # PBKDF2 with 100k iterations: off the event loop.
                check = await anyio.to_thread.run_sync(compute_check, current, password)
            except Exception:
                raise TelegramError("unsupported 2FA password algorithm") from None
            try:
                authorization = await self._request(functions.auth.CheckPasswordRequest(check))
            except SrpStaleError:
                if attempt + 1 == _SRP_TRIES:
                    raise
                continue
            return await self._logged_in(authorization)
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_me(self) -> int:
        # Telethon's get_me() swallows UnauthorizedError: use the raw request.
        users = await self._request(functions.users.GetUsersRequest([types.InputUserSelf()]))
        if not users or not isinstance(users[0], types.User):
            raise SessionRevokedError("the session is not authorized")
        return int(users[0].id)

    def session_string(self) -> str:
        if self._logged_out:
            return ""
        return str(self._client.session.save())

    async def log_out(self) -> None:
        await self._request(functions.auth.LogOutRequest())
        self._logged_out = True
        self._client._authorized = False

    # --- internals --------------------------------------------------------------------------

    async def _on_login_token(self, _update: Any) -> None:
        self._scans.arrived()

    async def _pause(self) -> None:
        """The throttle: a random pause before every request but the first."""
        settings = self._settings
        low, high = settings.throttle
        if self._requests and high > 0:
            await settings.sleep(settings.rng.uniform(low, high))
        self._requests += 1

    async def _request(self, request: Any) -> Any:
        await self._pause()
        return await self._guard(method_name(request), lambda: self._client(request))

    async def _guard(self, method: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``call`` within the request timeout, with Telethon's errors translated."""
        try:
            with anyio.fail_after(self._settings.timeout):
                return await call()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # a real cancellation of ours
            # Telethon cancels pending requests when a reconnect fails.
            raise TelegramUnavailableError(f"{method}: the connection was lost") from None
        except TimeoutError as exc:
            raise TelegramUnavailableError(f"{method}: no answer in time") from exc
        except TelegramError:
            raise
        except Exception as exc:
            mapped = translate(exc, method)
            if mapped is None:
                raise
            raise mapped from exc

    async def _result(self, response: Any) -> ExportResult:
        if isinstance(response, types.auth.LoginToken):
            return LoginToken(
                token=response.token,
                url=login_url(response.token),
                expires_at=self._local_time(response.expires),
                dc_id=self.dc_id,
            )
        if isinstance(response, types.auth.LoginTokenMigrateTo):
            return LoginMigrate(dc_id=int(response.dc_id), token=response.token)
        if isinstance(response, types.auth.LoginTokenSuccess):
            return await self._logged_in(response.authorization)
        raise TelegramError(f"unexpected answer {type(response).__name__}")

    async def _logged_in(self, authorization: Any) -> LoginSuccess:
        if not isinstance(authorization, types.auth.Authorization):
            raise TokenInvalidError("the account must sign up in an official app first")
        user = authorization.user
        # What QRLogin does: self-user bookkeeping and the update state (getState/getDifference).
        await self._guard("updates.getState", lambda: self._client._on_login(user))
        return LoginSuccess(user_id=int(user.id), dc_id=self.dc_id)

    def _local_time(self, server_time: datetime) -> datetime:
        """``server_time`` on our clock: Telethon tracks the server's clock offset."""
        state = getattr(self._client._sender, "_state", None)
        offset = float(getattr(state, "time_offset", 0) or 0)
        server_now = time.time() + offset
        return datetime.now(UTC) + timedelta(seconds=server_time.timestamp() - server_now)
