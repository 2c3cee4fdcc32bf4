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

import itertools
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ._fake_client import FakeClient, KeyState, Token
from ._urls import parse_login_url
from .port import FloodWaitError, TelegramUnavailableError

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


class _User:
    __slots__ = ("dc_id", "first_name", "hint", "password", "user_id")

    def __init__(
        self, user_id: int, dc_id: int, password: str | None, hint: str, first_name: str
    ) -> None:
        self.user_id = user_id
        self.dc_id = dc_id
        self.password = password
        self.hint = hint
        self.first_name = first_name

    def __repr__(self) -> str:  # never the password
        return f"_User(user_id={self.user_id}, dc_id={self.dc_id})"


class FakeTelegram:
    """Implements :class:`~actors.telegram.port.TelegramPort` in memory.

    ``clock`` gives the current UTC time (tokens expire ``token_ttl_s`` after their export).
    Nothing here blocks except :meth:`FakeClient.wait_scanned`.
    """

    __slots__ = (
        "_by_tenant",
        "_clock",
        "_counters",
        "_dc_ids",
        "_keys",
        "_open",
        "_script",
        "_serial",
        "_tokens",
        "_ttl",
        "_users",
    )

    def __init__(
        self,
        *,
        token_ttl_s: float = 30.0,
        clock: Callable[[], datetime] = _utc_now,
        dc_ids: Sequence[int] = (1, 2),
    ) -> None:
        if not dc_ids:
            raise ValueError("dc_ids must not be empty")
        self._ttl = timedelta(seconds=token_ttl_s)
        self._clock = clock
        self._dc_ids = tuple(dc_ids)
        self._users: dict[int, _User] = {}
        self._tokens: dict[bytes, Token] = {}
        self._keys: dict[str, KeyState] = {}
        self._by_tenant: dict[str, FakeClient] = {}
        self._open = 0
        self._script: dict[str, deque[BaseException | int]] = {}
        self._serial = itertools.count(1)
        self._counters = dict.fromkeys(("exports", "scans", "imports", "checks", "logins"), 0)

    @property
    def home_dc(self) -> int:
        """The DC new clients connect to (the first of ``dc_ids``)."""
        return self._dc_ids[0]

    # --- the port ---------------------------------------------------------------------------

    def open_client(self, tenant: str, session: str | None = None) -> FakeClient:
        """A client for ``tenant``, restoring ``session`` (an unknown session gives an
        unauthorized client, as a forgotten auth key does on Telegram).

        Raises (on enter): whatever ``fail_next("connect", ...)`` scripted.
        """
        state = self._keys.get(session) if session else None
        if state is None:
            state = KeyState(self.home_dc)
        return FakeClient(self, tenant, state)

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
        if user_id in self._users:
            return
        dc = self.home_dc if dc_id is None else dc_id
        if dc not in self._dc_ids:
            raise ValueError(f"unknown DC {dc}")
        self._users[user_id] = _User(user_id, dc, password, hint, first_name)

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
        if token.expires_at <= self._clock():
            raise ScanError("the login token has expired")
        if token.accepted_by is not None:
            raise ScanError("the login token was already accepted")
        token.accepted_by = user_id
        self._counters["scans"] += 1
        token.client._notify_scanned()

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
        for state in self._keys.values():
            if state.user_id == user_id:
                state.user_id = None

    def statistics(self) -> FakeStatistics:
        c = self._counters
        return FakeStatistics(
            open_clients=self._open,
            exports=c["exports"],
            scans=c["scans"],
            imports=c["imports"],
            password_checks=c["checks"],
            logins=c["logins"],
            users=len(self._users),
        )

    # --- used by FakeClient (private to this package) --------------------------------------

    def _now(self) -> datetime:
        return self._clock()

    def _count(self, name: str) -> None:
        self._counters[name] += 1

    def _user_dc(self, user_id: int) -> int:
        return self._users[user_id].dc_id

    def _user_secret(self, user_id: int) -> tuple[str | None, str]:
        user = self._users[user_id]
        return user.password, user.hint

    def _has_dc(self, dc_id: int) -> bool:
        return dc_id in self._dc_ids

    async def _call(self, method: str) -> None:
        """A checkpoint, then whatever was scripted for ``method``."""
        await anyio.lowlevel.checkpoint()
        queue = self._script.get(method)
        if not queue:
            return
        item = queue.popleft()
        if isinstance(item, int):
            raise FloodWaitError(item, method)
        raise item

    def _new_token(self, client: FakeClient, dc_id: int, accepted_by: int | None = None) -> Token:
        raw = next(self._serial).to_bytes(8, "big") + secrets.token_bytes(8)
        token = Token(raw, client, self._clock() + self._ttl, dc_id, accepted_by)
        token.migrate = accepted_by is not None
        self._tokens[raw] = token
        return token

    def _drop_token(self, token: Token) -> None:
        self._tokens.pop(token.raw, None)

    def _find_raw_token(self, raw: bytes) -> Token | None:
        return self._tokens.get(raw)

    def _remember_key(self, state: KeyState) -> str:
        """The session string of ``state`` (created on first use)."""
        if state.key is None:
            state.key = f"fake1:{next(self._serial)}:{secrets.token_urlsafe(12)}"
            self._keys[state.key] = state
        return state.key

    def _forget_key(self, state: KeyState) -> None:
        if state.key is not None:
            self._keys.pop(state.key, None)

    def _opened(self, client: FakeClient) -> None:
        self._open += 1
        self._by_tenant[client.tenant] = client

    def _closed(self, client: FakeClient) -> None:
        self._open -= 1
        if self._by_tenant.get(client.tenant) is client:
            del self._by_tenant[client.tenant]
        if client.token is not None:
            self._drop_token(client.token)
            client.token = None

    # --- internals --------------------------------------------------------------------------

    def _queue(self, method: str) -> deque[BaseException | int]:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {sorted(METHODS)}")
        return self._script.setdefault(method, deque())

    def _find_token(self, url: str | None, tenant: str | None) -> Token:
        if url is None:
            if tenant is None:
                raise ValueError("give url= or tenant=")
            client = self._by_tenant.get(tenant)
            if client is None or client.token is None:
                raise ScanError(f"tenant {tenant!r} has no open client with a login token")
            return client.token
        try:
            raw = parse_login_url(url)
        except ValueError as exc:
            raise ScanError(str(exc)) from exc
        token = self._tokens.get(raw)
        if token is None:
            raise ScanError("unknown login token")
        return token


if TYPE_CHECKING:  # FakeTelegram is a TelegramPort
    from .port import TelegramPort

    _check: TelegramPort = FakeTelegram()
