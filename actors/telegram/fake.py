"""An in-process fake of :class:`~actors.telegram.port.TelegramPort`, scripted like the simulator.

It keeps Telegram's server-side state in memory (users, login tokens, authorizations) and
answers the port's calls the way Telegram does: a plain token until the phone scans, then
success, a migration to the user's DC, or ``PasswordNeeded``. The same verbs as the simulator
drive it (``add_user``, ``scan``, ``flood_next``, ``fail_next``, ``revoke``), so one contract
suite (``tests/telegram/test_contract.py``) runs against both.

It is built to be cheap: ten thousand live clients in one process cost a few hundred bytes
each (``__slots__``, no tasks; an :class:`anyio.Event` only while someone waits).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ._fake_client import FakeClient, KeyState, Token
from ._fake_server import FakeServer, User
from ._urls import parse_login_url
from .port import Device, TelegramUnavailableError
from .proxy import Proxy

__all__ = ["FakeStatistics", "FakeTelegram", "ScanError"]

#: TL names of the calls that ``flood_next``/``fail_next`` understand, plus ``connect``
#: (opening a client).
METHODS = frozenset(
    {
        "connect",
        "auth.exportLoginToken",
        "auth.importLoginToken",
        "account.getPassword",
        "auth.checkPassword",
        "users.getUsers",
        "auth.logOut",
    }
)


class ScanError(Exception):
    """The phone could not accept the token: unknown, expired or already used (the fake's
    counterpart of ``SimulatorError``)."""


@dataclass(frozen=True, slots=True)
class FakeStatistics:
    """Counters of a :class:`FakeTelegram` (``open_clients`` is live, the rest cumulative)."""

    open_clients: int
    exports: int
    scans: int
    imports: int
    password_checks: int
    logins: int
    users: int


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FakeTelegram:
    """Implements :class:`~actors.telegram.port.TelegramPort` in memory.

    ``clock`` gives the current UTC time (tokens expire ``token_ttl_s`` after their export).
    Nothing here blocks except :meth:`FakeClient.wait_scanned`.
    """

    __slots__ = ("_server",)

    def __init__(
        self,
        *,
        token_ttl_s: float = 30.0,
        clock: Callable[[], datetime] = _utc_now,
        dc_ids: Sequence[int] = (1, 2),
    ) -> None:
        if not dc_ids:
            raise ValueError("dc_ids must not be empty")
        self._server = FakeServer(token_ttl_s=token_ttl_s, clock=clock, dc_ids=dc_ids)

    @property
    def home_dc(self) -> int:
        """The DC new clients connect to (the first of ``dc_ids``)."""
        return self._server.dc_ids[0]

    # --- the port ---------------------------------------------------------------------------

    def open_client(
        self,
        tenant: str,
        session: str | None = None,
        *,
        device: Device | None = None,
        proxy: Proxy | None = None,
    ) -> FakeClient:
        """A client for ``tenant``, restoring ``session`` (an unknown session gives an
        unauthorized client, as a forgotten auth key does on Telegram), named ``device``
        (:meth:`device_of` tells the last one).

        Raises (on enter): whatever ``fail_next("connect", ...)`` scripted.
        """
        state = self._server.keys.get(session) if session else None
        if state is None:
            state = KeyState(self.home_dc)
        self._server.devices[tenant] = device or Device()
        self._server.proxies[tenant] = proxy
        return FakeClient(self._server, tenant, state)

    # --- scripting (the "phone" and the operator) -------------------------------------------

    def add_user(
        self,
        user_id: int,
        *,
        dc_id: int | None = None,
        password: str | None = None,
        hint: str = "",
        first_name: str = "",
    ) -> None:
        """Create the account ``user_id`` on ``dc_id`` (default: the home DC); idempotent."""
        users = self._server.users
        if user_id in users:
            return
        dc = self.home_dc if dc_id is None else dc_id
        if dc not in self._server.dc_ids:
            raise ValueError(f"unknown DC {dc}")
        users[user_id] = User(user_id, dc, password, hint, first_name)

    def scan(
        self,
        *,
        user_id: int,
        url: str | None = None,
        tenant: str | None = None,
        password: str | None = None,
        dc_id: int | None = None,
    ) -> None:
        """The phone of ``user_id`` (created on first use) accepts a login token: the one in
        ``url``, or the latest one exported by ``tenant``'s open client.

        Raises:
            ScanError: unknown, expired or already accepted token.
        """
        self.add_user(user_id, dc_id=dc_id, password=password)
        token = self._find_token(url, tenant)
        if token.expires_at <= self._server.now():
            raise ScanError("the login token has expired")
        if token.accepted_by is not None:
            raise ScanError("the login token was already accepted")
        token.accepted_by = user_id
        self._server.count("scans")
        token.scans.arrived()

    def flood_next(self, method: str, seconds: int, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise ``FloodWaitError(seconds, method)``."""
        self._queue(method).extend([seconds] * times)

    def fail_next(self, method: str, error: BaseException | None = None, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise ``error`` (default: a
        ``TelegramUnavailableError``); any exception works, to crash an actor on demand."""
        for _ in range(times):
            self._queue(method).append(
                TelegramUnavailableError(f"{method}: internal server error")
                if error is None
                else error
            )

    def revoke(self, user_id: int) -> None:
        """Every authorization of ``user_id`` becomes invalid (``get_me`` raises)."""
        for state in self._server.keys.values():
            if state.user_id == user_id:
                state.user_id = None

    def proxy_of(self, tenant: str) -> Proxy | None:
        """The proxy ``tenant``'s latest client went through (None: directly, or never)."""
        return self._server.proxies.get(tenant)

    def device_of(self, tenant: str) -> Device | None:
        """The device ``tenant``'s latest client named itself as (None: it never opened one)."""
        return self._server.devices.get(tenant)

    def statistics(self) -> FakeStatistics:
        server = self._server
        c = server.counters
        return FakeStatistics(
            open_clients=server.open_clients,
            exports=c["exports"],
            scans=c["scans"],
            imports=c["imports"],
            password_checks=c["checks"],
            logins=c["logins"],
            users=len(server.users),
        )

    # --- internals --------------------------------------------------------------------------

    def _queue(self, method: str) -> deque[BaseException | int]:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {sorted(METHODS)}")
        return self._server.script.setdefault(method, deque())

    def _find_token(self, url: str | None, tenant: str | None) -> Token:
        if url is None:
            if tenant is None:
                raise ValueError("give url= or tenant=")
            client = self._server.by_tenant.get(tenant)
            if client is None or client.token is None:
                raise ScanError(f"tenant {tenant!r} has no open client with a login token")
            return client.token
        try:
            raw = parse_login_url(url)
        except ValueError as exc:
            raise ScanError(str(exc)) from exc
        token = self._server.find_token(raw)
        if token is None:
            raise ScanError("unknown login token")
        return token


if TYPE_CHECKING:  # FakeTelegram is a TelegramPort
    from .port import TelegramPort

    _check: TelegramPort = FakeTelegram()
