"""The fake Telegram's server-side state: accounts, login tokens, auth keys, scripted failures.

:class:`FakeServer` answers what a :class:`~._fake_client.FakeClient` asks (it is the clients'
:class:`~._fake_client.Server`); :class:`~.fake.FakeTelegram` owns one and drives it with the
port and the scripting verbs. Nothing here blocks except :meth:`FakeServer.call` (a checkpoint).
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import anyio.lowlevel

from ._fake_client import FakeClient, KeyState, Token
from ._scans import ScanSignal
from .port import Device, FloodWaitError
from .proxy import Proxy

__all__ = ["FakeServer", "User"]


class User:
    """An account: its DC, and its 2FA password and hint (never in the repr)."""

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
        return f"User(user_id={self.user_id}, dc_id={self.dc_id})"


class FakeServer:
    """Telegram's state as the fake keeps it; :class:`~.fake.FakeTelegram` reads the attributes.

    ``clock`` gives the current UTC time (tokens expire ``token_ttl_s`` after their export).
    """

    __slots__ = (
        "by_tenant",
        "clock",
        "counters",
        "dc_ids",
        "devices",
        "keys",
        "open_clients",
        "proxies",
        "script",
        "serial",
        "tokens",
        "ttl",
        "users",
    )

    def __init__(
        self, *, token_ttl_s: float, clock: Callable[[], datetime], dc_ids: Sequence[int]
    ) -> None:
        self.ttl = timedelta(seconds=token_ttl_s)
        self.clock = clock
        self.dc_ids = tuple(dc_ids)
        self.users: dict[int, User] = {}
        self.tokens: dict[bytes, Token] = {}  # live tokens by their bytes
        self.keys: dict[str, KeyState] = {}  # auth keys by session string
        self.by_tenant: dict[str, FakeClient] = {}  # each tenant's latest open client
        self.devices: dict[str, Device] = {}  # the device of each tenant's latest client
        self.proxies: dict[str, Proxy | None] = {}  # the proxy of each tenant's latest client
        self.open_clients = 0
        self.script: dict[str, deque[BaseException | int]] = {}  # method -> error or flood s
        self.serial = itertools.count(1)
        self.counters = dict.fromkeys(("exports", "scans", "imports", "checks", "logins"), 0)

    # --- what clients ask (the Server protocol) ---------------------------------------------

    def now(self) -> datetime:
        return self.clock()

    def count(self, name: str) -> None:
        self.counters[name] += 1

    def user_dc(self, user_id: int) -> int:
        return self.users[user_id].dc_id

    def user_secret(self, user_id: int) -> tuple[str | None, str]:
        user = self.users[user_id]
        return user.password, user.hint

    def has_dc(self, dc_id: int) -> bool:
        return dc_id in self.dc_ids

    async def call(self, method: str) -> None:
        """A checkpoint, then whatever was scripted for ``method``."""
        await anyio.lowlevel.checkpoint()
        queue = self.script.get(method)
        if not queue:
            return
        item = queue.popleft()
        if isinstance(item, int):
            raise FloodWaitError(item, method)
        raise item

    def new_token(self, scans: ScanSignal, dc_id: int, accepted_by: int | None = None) -> Token:
        raw = next(self.serial).to_bytes(8, "big") + secrets.token_bytes(8)
        token = Token(raw, scans, self.clock() + self.ttl, dc_id, accepted_by)
        token.migrate = accepted_by is not None
        self.tokens[raw] = token
        return token

    def drop_token(self, token: Token) -> None:
        self.tokens.pop(token.raw, None)

    def find_token(self, raw: bytes) -> Token | None:
        return self.tokens.get(raw)

    def remember_key(self, state: KeyState) -> str:
        """The session string of ``state`` (created on first use)."""
        if state.key is None:
            state.key = f"fake1:{next(self.serial)}:{secrets.token_urlsafe(12)}"
            self.keys[state.key] = state
        return state.key

    def forget_key(self, state: KeyState) -> None:
        if state.key is not None:
            self.keys.pop(state.key, None)

    def opened(self, client: FakeClient) -> None:
        self.open_clients += 1
        self.by_tenant[client.tenant] = client

    def closed(self, client: FakeClient) -> None:
        self.open_clients -= 1
        if self.by_tenant.get(client.tenant) is client:
            del self.by_tenant[client.tenant]
        if client.token is not None:
            self.drop_token(client.token)
            client.token = None
