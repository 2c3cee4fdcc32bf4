"""The Telethon adapter of :class:`~actors.telegram.port.TelegramPort` (real Telegram or the
simulator).

It drives the QR login with raw requests (``auth.exportLoginToken`` /
``auth.importLoginToken``), never ``QRLogin.wait()``: one ``updateLoginToken`` handler is
registered before connecting and stays for the client's whole life, so a scan that lands
before :meth:`wait_scanned` is not lost. Telethon runs with ``flood_sleep_threshold=0`` and
``raise_last_call_error=True``: every flood wait reaches the caller as our
:class:`~actors.telegram.port.FloodWaitError`, and the adapter never sleeps on it. Between
one client's consecutive requests it pauses a random 200-500 ms (``throttle_s``).

Only this module and :mod:`._telethon_errors` import Telethon.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from telethon import TelegramClient, events, functions, types
from telethon.password import compute_check
from telethon.sessions import StringSession

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
    TelegramClientPort,
    TelegramConfigError,
    TelegramError,
    TelegramUnavailableError,
    TokenInvalidError,
)

__all__ = ["SIMULATOR_API_HASH", "SIMULATOR_API_ID", "TelethonTelegram"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Credentials the simulator accepts (any will do; these name us in its logs).
SIMULATOR_API_ID = 1
SIMULATOR_API_HASH = "tgqr-simulator"
_DISCONNECT_TIMEOUT_S = 5.0
_SRP_TRIES = 2


class _SimulatorLike(Protocol):
    @property
    def home_dc(self) -> int: ...
    def dc_address(self, dc_id: int) -> tuple[str, int]: ...
    def register_with_telethon(self) -> None: ...


class TelethonTelegram:
    """Opens Telethon clients, one per tenant and block.

    ``dc=None`` uses Telethon's defaults (real Telegram); ``dc=(dc_id, host, port)`` points new
    sessions at another DC (the simulator). ``rng`` and ``sleep`` drive the throttle;
    ``request_timeout`` bounds connecting and every request.
    """

    def __init__(
        self,
        *,
        api_id: int,
        api_hash: str,
        dc: tuple[int, str, int] | None = None,
        throttle_s: tuple[float, float] = (0.2, 0.5),
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        request_timeout: float = 10.0,
    ) -> None:
        low, high = throttle_s
        if not 0 <= low <= high:
            raise ValueError("throttle_s must be (low, high) with 0 <= low <= high")
        self._api_id = api_id
        self._api_hash = api_hash
        self._dc = dc
        self._throttle = (low, high)
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._timeout = request_timeout
        # Telethon caches help.getConfig in a class attribute shared by every client of the
        # process; a subclass per adapter keeps the simulator's DC list apart from others.
        self._client_class: type[Any] = type(
            "TgqrTelegramClient", (TelegramClient,), {"_config": None, "_cdn_config": None}
        )

    @classmethod
    def for_simulator(
        cls,
        sim: _SimulatorLike,
        *,
        throttle_s: tuple[float, float] = (0.0, 0.0),
        request_timeout: float = 10.0,
    ) -> TelethonTelegram:
        """An adapter pointed at ``sim``'s home DC (registers its RSA key with Telethon)."""
        sim.register_with_telethon()
        host, port = sim.dc_address(sim.home_dc)
        return cls(
            api_id=SIMULATOR_API_ID,
            api_hash=SIMULATOR_API_HASH,
            dc=(sim.home_dc, host, port),
            throttle_s=throttle_s,
            request_timeout=request_timeout,
        )

    def __repr__(self) -> str:  # never the api_hash
        return f"TelethonTelegram(api_id={self._api_id}, dc={self._dc})"

    def open_client(
        self, tenant: str, session: str | None = None
    ) -> AbstractAsyncContextManager[TelegramClientPort]:
        """Connect a client (restoring ``session``) for the block; it is disconnected on
        every exit path, cancellation included (the disconnect is shielded, at most 5 s).

        Raises (on enter):
            TelegramUnavailableError: unreachable, or no answer within ``request_timeout``.
            TelegramConfigError: the api_id is refused, or ``session`` is malformed.
        """
        return self._open(tenant, session)

    @asynccontextmanager
    async def _open(self, tenant: str, session: str | None) -> AsyncIterator[TelegramClientPort]:
        try:
            string_session = StringSession(session or None)
        except Exception:
            raise TelegramConfigError("the stored session string is malformed") from None
        if not session and self._dc is not None:
            string_session.set_dc(*self._dc)
        client = self._client_class(
            string_session,
            self._api_id,
            self._api_hash,
            flood_sleep_threshold=0,
            raise_last_call_error=True,
            request_retries=0,
            connection_retries=1,
            retry_delay=1,
            timeout=self._timeout,
        )
        adapter = _TelethonClient(client, self, tenant)
        client.add_event_handler(adapter._on_login_token, events.Raw(types.UpdateLoginToken))
        started = time.monotonic()
        try:
            await adapter._guard("connect", client.connect)
            yield adapter
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_DISCONNECT_TIMEOUT_S):
                try:
                    await client.disconnect()
                except Exception as exc:  # never mask the block's own outcome
                    _log.warning("tenant %s: disconnect failed: %s", tenant, type(exc).__name__)
            _log.debug("tenant %s: client closed after %.3f s", tenant, time.monotonic() - started)


class _TelethonClient:
    """One connected client (:class:`~actors.telegram.port.TelegramClientPort`)."""

    def __init__(self, client: Any, owner: TelethonTelegram, tenant: str) -> None:
        self._client = client
        self._owner = owner
        self._tenant = tenant
        self._requests = 0
        self._scans = ScanSignal()
        self._logged_out = False

    def __repr__(self) -> str:  # never the session
        return f"TelethonClient(tenant={self._tenant!r}, dc_id={self.dc_id})"

    @property
    def dc_id(self) -> int:
        return int(self._client.session.dc_id)

    async def export_token(self, except_ids: Sequence[int] = ()) -> ExportResult:
        owner = self._owner
        request = functions.auth.ExportLoginTokenRequest(
            owner._api_id, owner._api_hash, list(except_ids)
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
        low, high = self._owner._throttle
        if self._requests and high > 0:
            await self._owner._sleep(self._owner._rng.uniform(low, high))
        self._requests += 1

    async def _request(self, request: Any) -> Any:
        await self._pause()
        return await self._guard(method_name(request), lambda: self._client(request))

    async def _guard(self, method: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``call`` within the request timeout, with Telethon's errors translated."""
        try:
            with anyio.fail_after(self._owner._timeout):
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
