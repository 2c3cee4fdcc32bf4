"""The Telegram simulator: fake DCs on loopback TCP plus the "phone" and scripting verbs."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import anyio.abc
from anyio.abc import SocketAttribute, SocketStream

from actors.telegram import parse_login_url

from ._connection import Connection
from ._devices import SeenDevice, devices_of, terminate
from ._endpoint import DataCentre
from ._errors import RpcFailure, SimulatorError
from ._handshake import test_rsa_key
from ._persist import SimSnapshot, load_snapshot, save_snapshot, store_lock
from ._rpc import RpcHandler, update_login_token
from ._rsakey import known_public_keys, stored_rsa_key
from ._state import KeyRef, SimState

__all__ = ["SimStatistics", "Simulator"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimStatistics:
    """A snapshot of what the simulator has done (see :meth:`Simulator.statistics`)."""

    open_connections: int
    connections: int
    malformed_connections: int
    handshakes: int
    auth_keys: int
    rpc_calls: int
    exports: int
    scans: int
    logins: int
    users: int


class Simulator:
    """Fake Telegram DCs speaking MTProto 2.0 over TCP, so unmodified clients (Telethon)
    log in by QR against them.

    Accounts, auth keys and authorizations live in this object's memory for its lifetime;
    :meth:`run` binds one listener per DC (random ports) and serves until cancelled. The
    business clock ``clock`` stamps token expiry and dates; message ids and the handshake's
    ``server_time`` use the wall clock, as clients check those against their own.

    With ``store`` (a directory), they outlive it: the ports, accounts, auth keys and logins
    are written there after every change and taken back by the next simulator on that
    directory, whose DCs listen on the same ports, so a stored Telethon session still works.

    Raises SimulatorError for bad arguments or a ``store`` holding an unreadable state file.
    """

    def __init__(
        self,
        *,
        dc_ids: Sequence[int] = (1, 2),
        token_ttl_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        store: Path | None = None,
    ) -> None:
        if not dc_ids or len(set(dc_ids)) != len(dc_ids) or min(dc_ids) <= 0:
            raise SimulatorError("dc_ids must be distinct positive integers")
        if token_ttl_s <= 0:
            raise SimulatorError("token_ttl_s must be positive")
        self._host = host
        self._clock = clock
        self._state = SimState(dc_ids=dc_ids, token_ttl_s=token_ttl_s, random_bytes=os.urandom)
        self._rpc = RpcHandler(self._state, clock=clock, dc_options=self.dcs)
        self._rsa = stored_rsa_key(store) if store is not None else test_rsa_key()
        self.public_key_pem = self._rsa.public_pem  # what clients must trust (sim.info)
        self._dcs = {dc: DataCentre(dc, self._rsa, self._rpc, os.urandom) for dc in dc_ids}
        self._ports: dict[int, int] = {}
        self._bound: dict[KeyRef, set[Connection]] = {}
        self._open = 0
        self._connections = 0
        self._malformed = 0
        self._store = store
        self._kept_ports: dict[int, int] = {}
        self._changed: anyio.Event | None = None
        if store is not None:
            self._take_back(store)

    # --- serving --------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on one port per DC (random ones, or those kept in ``store``) and serve
        until cancelled; then every connection is closed. ``task_status.started()`` once all
        DCs listen. A ``store`` another running simulator holds is left alone (with a
        warning): this one then listens on random ports and keeps nothing.

        Raises SimulatorError if already running or a kept port is taken, OSError if a port
        cannot be bound.
        """
        if self._ports:
            raise SimulatorError("the simulator is already running")
        store = self._store
        try:
            async with AsyncExitStack() as stack:
                if store is not None and not stack.enter_context(store_lock(store)):
                    _log.warning("%s is in use by another simulator: this one keeps nothing", store)
                    store = None
                try:
                    await self._serve_all(stack, store, task_status)
                finally:
                    if store is not None and self._ports:  # what changed last, still locked
                        save_snapshot(store, self._snapshot())
        finally:
            self._ports.clear()
            self._changed = None

    async def _serve_all(
        self,
        stack: AsyncExitStack,
        store: Path | None,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        async with anyio.create_task_group() as tg:
            for dc_id, dc in self._dcs.items():
                listener = await self._listen(dc_id, kept=store is not None)
                await stack.enter_async_context(listener)
                self._ports[dc_id] = listener.extra(SocketAttribute.local_port)  # noqa: S610
                tg.start_soon(partial(listener.serve, partial(self._serve, dc), tg))
            _log.info("simulator listening: %s", self.dcs())
            if store is not None:
                self._changed = anyio.Event()
                await anyio.to_thread.run_sync(save_snapshot, store, self._snapshot())
                tg.start_soon(self._keep_saving, store)
            task_status.started()
            await anyio.sleep_forever()

    async def _listen(self, dc_id: int, *, kept: bool) -> anyio.abc.Listener[SocketStream]:
        port = self._kept_ports.get(dc_id, 0) if kept else 0
        try:
            return await anyio.create_tcp_listener(local_host=self._host, local_port=port)
        except OSError as exc:
            raise SimulatorError(
                f"DC {dc_id} cannot listen on {self._host}:{port} again (kept in "
                f"{self._store}): {exc.strerror or exc}"
            ) from exc

    # --- persistence ----------------------------------------------------------------------

    def _take_back(self, store: Path) -> None:
        for dc in self._dcs.values():
            dc.on_change = self._note_change
        self._state.on_change = self._note_change
        snapshot = load_snapshot(store)
        if snapshot is None:
            return
        unknown = set(snapshot.ports) - set(self._dcs)
        if unknown:
            raise SimulatorError(f"{store} is the state of other DCs ({sorted(unknown)})")
        self._kept_ports = dict(snapshot.ports)
        for dc_id, keys in snapshot.keys.items():
            self._dcs[dc_id].keys.update({key.key_id: key for key in keys})
        self._state.restore(snapshot.users, snapshot.authorized, snapshot.pending)
        _log.info(
            "simulator state taken back from %s: %d users, %d auth keys",
            store,
            len(snapshot.users),
            sum(len(keys) for keys in snapshot.keys.values()),
        )

    def _note_change(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _snapshot(self) -> SimSnapshot:
        authorized, pending = self._state.logins_by_key()
        return SimSnapshot(
            ports=dict(self._ports or self._kept_ports),
            users=list(self._state.users.values()),
            keys={dc_id: list(dc.keys.values()) for dc_id, dc in self._dcs.items()},
            authorized=authorized,
            pending=pending,
        )

    async def _keep_saving(self, store: Path) -> None:
        """Write the state after each change (changes made meanwhile are one more write)."""
        while self._changed is not None:
            await self._changed.wait()
            self._changed = anyio.Event()
            await anyio.to_thread.run_sync(save_snapshot, store, self._snapshot())

    async def _serve(self, dc: DataCentre, stream: SocketStream) -> None:
        connection = Connection(dc, stream, on_bind=self._rebind)
        self._open += 1
        self._connections += 1
        try:
            await connection.serve()
        finally:
            self._open -= 1
            self._malformed += connection.malformed
            if connection.ref is not None:
                self._rebind(connection, connection.ref, None)

    def _rebind(self, connection: Connection, old: KeyRef | None, new: KeyRef | None) -> None:
        if old is not None:
            peers = self._bound.get(old, set())
            peers.discard(connection)
            if not peers:
                self._bound.pop(old, None)
        if new is not None:
            self._bound.setdefault(new, set()).add(connection)

    def dcs(self) -> list[tuple[int, str, int]]:
        """``(dc_id, host, port)`` of each running DC, the home DC first (none if stopped)."""
        return [(dc, self._host, port) for dc, port in self._ports.items()]

    # --- addresses ------------------------------------------------------------------------

    @property
    def home_dc(self) -> int:
        """The DC new clients are pointed at (the first of ``dc_ids``)."""
        return self._state.dc_ids[0]

    def dc_address(self, dc_id: int) -> tuple[str, int]:
        """``(host, port)`` of a running DC; raises SimulatorError if unknown or not running."""
        if dc_id not in self._dcs:
            raise SimulatorError(f"unknown DC {dc_id}")
        port = self._ports.get(dc_id)
        if port is None:
            raise SimulatorError("the simulator is not running")
        return self._host, port

    @staticmethod
    def register_with_telethon() -> None:
        """Make Telethon trust the keys of this process's simulators (idempotent)."""
        from telethon.crypto import rsa

        for pem in known_public_keys():
            rsa.add_key(pem, old=False)

    # --- accounts and the phone -----------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        *,
        dc_id: int | None = None,
        password: str | None = None,
        hint: str = "",
        first_name: str = "",
    ) -> None:
        """Create an account on ``dc_id`` (default: the home DC), with 2FA if ``password``.
        Idempotent: an existing account is left as it is. Raises SimulatorError for an
        unknown DC or a non-positive id."""
        self._state.add_user(
            user_id,
            dc_id=self.home_dc if dc_id is None else dc_id,
            password=password,
            hint=hint,
            first_name=first_name,
        )

    def scan(
        self,
        *,
        user_id: int,
        url: str | None = None,
        token: bytes | None = None,
        password: str | None = None,
        dc_id: int | None = None,
    ) -> None:
        """The phone of ``user_id`` scans a QR (``url``) or accepts ``token``: the account is
        created on first use (on ``dc_id``, with 2FA ``password``), the token accepted, and
        ``updateShort(updateLoginToken)`` pushed to the connections of the key that exported
        it. Raises SimulatorError for a malformed URL or an unknown, expired or used token.
        """
        value = _token_from(url, token)
        if user_id not in self._state.users:
            self.add_user(user_id, dc_id=dc_id, password=password)
        exporter = self._state.accept(value, self._state.users[user_id], now=self._clock())
        body = update_login_token(int(self._clock()))
        delivered = sum(conn.push(body) for conn in list(self._bound.get(exporter, ())))
        _log.info("user %d scanned a token of DC %d (%d push(es))", user_id, exporter[0], delivered)

    # --- scripting ------------------------------------------------------------------------

    def flood_next(self, method: str, seconds: int, times: int = 1) -> None:
        """The next ``times`` calls of TL method ``method`` (e.g. ``auth.exportLoginToken``)
        answer ``420 FLOOD_WAIT_<seconds>``."""
        if seconds < 0:
            raise SimulatorError("seconds must not be negative")
        self._state.script(method, RpcFailure(420, f"FLOOD_WAIT_{seconds}"), times)

    def fail_next(self, method: str, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer ``500 INTERNAL`` (a server error)."""
        self._state.script(method, RpcFailure(500, "INTERNAL"), times)

    def devices(self, user_id: int) -> list[SeenDevice]:
        """The phone's Settings → Devices: each authorization of ``user_id`` as its client
        last named itself, and the address it came from. Raises SimulatorError for an
        unknown user."""
        return devices_of(self._state, self._rpc.devices, user_id)

    def terminate(self, user_id: int, device: str) -> None:
        """The phone ends the authorization ``device`` (an id from :meth:`devices`): its next
        call answers ``401 AUTH_KEY_UNREGISTERED``. Raises SimulatorError if there is none."""
        dc_id, _ = terminate(self._state, user_id, device)
        _log.info("user %d terminated device %s on DC %d", user_id, device, dc_id)

    def revoke(self, user_id: int) -> None:
        """Every authorization of the user becomes invalid (``401 AUTH_KEY_UNREGISTERED``)."""
        self._state.revoke(user_id)

    def statistics(self) -> SimStatistics:
        """Counters since construction (open connections: right now)."""
        return SimStatistics(
            open_connections=self._open,
            connections=self._connections,
            malformed_connections=self._malformed,
            handshakes=sum(dc.handshakes for dc in self._dcs.values()),
            auth_keys=sum(len(dc.keys) for dc in self._dcs.values()),
            rpc_calls=self._rpc.calls,
            exports=self._state.exports,
            scans=self._state.scans,
            logins=self._state.logins,
            users=len(self._state.users),
        )


def _token_from(url: str | None, token: bytes | None) -> bytes:
    if (url is None) == (token is None):
        raise SimulatorError("pass exactly one of url= or token=")
    if token is not None:
        return token
    assert url is not None  # noqa: S101 - narrowed above
    try:
        return parse_login_url(url)
    except ValueError as exc:
        raise SimulatorError(f"bad login URL: {exc}") from exc
