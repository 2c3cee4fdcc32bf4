"""The Telethon adapter of :class:`~actors.telegram.port.TelegramPort` (real Telegram or the
simulator).

It drives the QR login with raw requests (``auth.exportLoginToken`` /
``auth.importLoginToken``), never ``QRLogin.wait()``: one ``updateLoginToken`` handler is
registered before connecting and stays for the client's whole life, so a scan that lands
before :meth:`wait_scanned` is not lost. Telethon runs with ``flood_sleep_threshold=0`` and
``raise_last_call_error=True``: every flood wait reaches the caller as our
:class:`~actors.telegram.port.FloodWaitError`, and the adapter never sleeps on it. Between
one client's consecutive requests it pauses a random 200-500 ms (``throttle_s``).

Each client is a :class:`~._telethon_client.TelethonClient`. Only this module,
:mod:`._telethon_client` and :mod:`._telethon_errors` import Telethon.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import anyio
from telethon import TelegramClient
from telethon.client.telegrambaseclient import DEFAULT_DC_ID
from telethon.sessions import StringSession

from ._breaker import DcBreakers
from ._proxy_check import diagnose, explain, is_proxy_error
from ._telethon_client import ClientSettings, TelethonClient
from ._telethon_mtproxy import MTProxyIntermediate, MTProxyRandomizedIntermediate
from .port import (
    Device,
    TelegramClientPort,
    TelegramConfigError,
    TelegramError,
    TelegramUnavailableError,
)
from .proxy import Proxy

__all__ = ["SIMULATOR_API_HASH", "SIMULATOR_API_ID", "TelethonTelegram"]

_log = logging.getLogger(__name__)

#: Credentials the simulator accepts (any will do; these name us in its logs).
SIMULATOR_API_ID = 1
SIMULATOR_API_HASH = "tgqr-simulator"
_DISCONNECT_TIMEOUT_S = 5.0


class _SimulatorLike(Protocol):
    @property
    def home_dc(self) -> int: ...
    def dc_address(self, dc_id: int) -> tuple[str, int]: ...
    def register_with_telethon(self) -> None: ...


class TelethonTelegram:
    """Opens Telethon clients, one per tenant and block.

    ``dc=None`` uses Telethon's defaults (real Telegram); ``dc=(dc_id, host, port)`` points new
    sessions at another DC (the simulator). ``rng`` and ``sleep`` drive the throttle;
    ``request_timeout`` bounds connecting and every request. ``device``: how a client names
    itself when :meth:`open_client` is given none. ``breakers``: the circuit breakers of the
    DCs it dials directly (None: none); a connection through a proxy takes another path and
    neither counts nor is refused.
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
        device: Device | None = None,
        breakers: DcBreakers | None = None,
    ) -> None:
        low, high = throttle_s
        if not 0 <= low <= high:
            raise ValueError("throttle_s must be (low, high) with 0 <= low <= high")
        self._settings = ClientSettings(
            api_id=api_id,
            api_hash=api_hash,
            throttle=(low, high),
            rng=rng or random.Random(),
            sleep=sleep,
            timeout=request_timeout,
        )
        self._dc = dc
        self._device = device or Device()
        self._breakers = breakers
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
        device: Device | None = None,
        breakers: DcBreakers | None = None,
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
            device=device,
            breakers=breakers,
        )

    @property
    def new_login_dc(self) -> int:
        """The DC a login without a stored session dials."""
        return self._dc[0] if self._dc is not None else DEFAULT_DC_ID

    def retry_after(self) -> float | None:
        """Seconds before a new login may dial its DC (its breaker is open); None: now."""
        return None if self._breakers is None else self._breakers.retry_after(self.new_login_dc)

    def __repr__(self) -> str:  # never the api_hash
        return f"TelethonTelegram(api_id={self._settings.api_id}, dc={self._dc})"

    def open_client(
        self,
        tenant: str,
        session: str | None = None,
        *,
        device: Device | None = None,
        proxy: Proxy | None = None,
    ) -> AbstractAsyncContextManager[TelegramClientPort]:
        """Connect a client (restoring ``session``) for the block, sending ``device`` (None:
        the adapter's) in its ``initConnection``, through ``proxy`` (None: directly); it is
        disconnected on every exit path, cancellation included (the disconnect is shielded,
        at most 5 s).

        Raises (on enter):
            TelegramUnavailableError: unreachable, or no answer within ``request_timeout``;
                ProxyUnreachableError when the proxy is what did not answer;
                BreakerOpenError (without dialling) while the DC's breaker is open.
            ProxyAuthError: the proxy refused its credentials.
            TelegramConfigError: the api_id is refused, or ``session`` is malformed.
        """
        return self._open(tenant, session, device or self._device, proxy)

    @asynccontextmanager
    async def _open(
        self, tenant: str, session: str | None, device: Device, proxy: Proxy | None
    ) -> AsyncIterator[TelegramClientPort]:
        try:
            string_session = StringSession(session or None)
        except Exception:
            raise TelegramConfigError("the stored session string is malformed") from None
        if not session and self._dc is not None:
            string_session.set_dc(*self._dc)
        dc = string_session.dc_id or DEFAULT_DC_ID
        breakers = self._breakers if proxy is None else None
        if breakers is not None:
            breakers.admit(dc)  # raises BreakerOpenError: no dial at all
        client = self._client_class(
            string_session,
            self._settings.api_id,
            self._settings.api_hash,
            flood_sleep_threshold=0,
            raise_last_call_error=True,
            request_retries=0,
            # Two tries: Telethon refuses one key exchange in 256 (the shortest form of g^ab
            # it keeps differs from the server's 256 bytes) and must make another.
            connection_retries=2,
            retry_delay=1,
            timeout=self._settings.timeout,
            device_model=device.model,
            system_version=device.system,
            app_version=device.app_version,
            lang_code=device.lang,
            system_lang_code=device.system_lang,
            **_proxy_arguments(proxy),
        )
        adapter = TelethonClient(client, self._settings, tenant)
        started = time.monotonic()
        try:
            try:
                await _connect(adapter, breakers, dc)
            except TelegramUnavailableError:
                if proxy is None:
                    raise
                dc = string_session
                why = await diagnose(proxy, dc.server_address, dc.port, self._settings.timeout)
                raise why from None
            except Exception as exc:  # python-socks' own errors reach us past Telethon
                if proxy is None or not is_proxy_error(exc):
                    raise
                raise explain(proxy, exc) from None
            yield adapter
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_DISCONNECT_TIMEOUT_S):
                try:
                    await client.disconnect()
                except Exception as exc:  # never mask the block's own outcome
                    _log.warning("tenant %s: disconnect failed: %s", tenant, type(exc).__name__)
            _log.debug("tenant %s: client closed after %.3f s", tenant, time.monotonic() - started)


async def _connect(client: TelethonClient, breakers: DcBreakers | None, dc: int) -> None:
    """Connect ``client``, telling ``dc``'s breaker how it went."""
    if breakers is None:
        await client.connect()
        return
    try:
        await client.connect()
    except TelegramUnavailableError:
        breakers.failed(dc)
        raise
    except TelegramError:
        breakers.succeeded(dc)  # it answered, if only to refuse
        raise
    except BaseException:
        breakers.abandoned(dc)  # cancelled: says nothing of the DC
        raise
    breakers.succeeded(dc)


def _proxy_arguments(proxy: Proxy | None) -> dict[str, Any]:
    """``TelegramClient``'s ``proxy=`` (and for an MTProxy its ``connection=``: the
    intermediate codec, randomized when the secret asks for padding)."""
    if proxy is None:
        return {"proxy": None}
    if proxy.scheme != "mtproxy":
        return {"proxy": proxy.telethon()}
    connection = MTProxyRandomizedIntermediate if proxy.padded else MTProxyIntermediate
    return {"proxy": proxy.telethon_mtproxy(), "connection": connection}
