"""The simulator as one process shared by every instance (``tgqr sim serve``), and how an
instance in ``--sim shared`` mode finds it (``tgqr.sim.info``).

Several ``tgqr up`` each running a simulator of their own would each answer ``tgqr.sim.scan``
(the phone would reach a random one, usually not the one that issued the QR). With one shared
simulator there is one phone: instances point their Telethon clients at its DCs and serve no
``tgqr.sim.*`` themselves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

import anyio
import msgspec
import nats.errors
from anyio.abc import TaskStatus
from nats.aio.client import Client

from events import EventLog

from ._control import INFO_SUBJECT, serve_sim_control
from ._errors import SimulatorError
from ._simulator import Simulator

__all__ = ["SharedSimulator", "find_shared_simulator", "serve_shared_simulator"]

log = logging.getLogger("tgqr.sim")

_ASK_TIMEOUT_S: Final = 2.0
_RETRY_S: Final = 0.25


class _Dc(msgspec.Struct, frozen=True):
    id: Annotated[int, msgspec.Meta(ge=1)]
    host: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]


class _Info(msgspec.Struct, frozen=True):
    ok: bool
    dcs: tuple[_Dc, ...] = ()
    public_key: Annotated[str, msgspec.Meta(max_length=4096)] = ""


_info_decoder: Final = msgspec.json.Decoder(_Info)


@dataclass(frozen=True, slots=True)
class SharedSimulator:
    """A simulator running in another process, as ``tgqr.sim.info`` described it: its DCs and
    the RSA public key they sign the key exchange with, enough to point Telethon at it."""

    dcs: tuple[tuple[int, str, int], ...]
    public_key: str

    @property
    def home_dc(self) -> int:
        """The DC new clients are pointed at (the first one listed)."""
        return self.dcs[0][0]

    def dc_address(self, dc_id: int) -> tuple[str, int]:
        """``(host, port)`` of ``dc_id``; raises SimulatorError if it was not listed."""
        for dc, host, port in self.dcs:
            if dc == dc_id:
                return host, port
        raise SimulatorError(f"the shared simulator has no DC {dc_id}")

    def register_with_telethon(self) -> None:
        """Make Telethon trust the simulator's RSA key (process-wide, idempotent)."""
        from telethon.crypto import rsa

        rsa.add_key(self.public_key, old=False)


async def find_shared_simulator(
    nc: Client,
    *,
    wait_s: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> SharedSimulator:
    """Ask ``tgqr.sim.info`` until the shared simulator answers (blocks at most ``wait_s``).

    Raises:
        SimulatorError: nobody answered within ``wait_s``, or the answer is malformed.
    """
    with anyio.move_on_after(wait_s):
        while True:
            try:
                msg = await nc.request(INFO_SUBJECT, b"{}", timeout=_ASK_TIMEOUT_S)
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await sleep(_RETRY_S)  # not there yet: `tgqr sim serve` may start later
                continue
            try:
                info = _info_decoder.decode(msg.data)
            except msgspec.DecodeError as exc:
                raise SimulatorError(f"{INFO_SUBJECT} answered something else: {exc}") from None
            if not info.ok or not info.dcs or not info.public_key:
                raise SimulatorError(f"{INFO_SUBJECT} answered without DCs or a public key")
            dcs = tuple((dc.id, dc.host, dc.port) for dc in info.dcs)
            found = SharedSimulator(dcs, info.public_key)
            log.info("using the shared simulator: %s", list(found.dcs))
            return found
    raise SimulatorError(
        f"no shared simulator answered on {INFO_SUBJECT} within {math.ceil(wait_s)} s: "
        "start `tgqr sim serve --nats URL` (or run without --sim shared)"
    )


async def serve_shared_simulator(
    nc: Client,
    event_log: EventLog,
    store: Path,
    *,
    token_ttl_s: float = 30.0,
    task_status: TaskStatus[Simulator] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run a simulator keeping its state in ``store`` and answer ``tgqr.sim.>`` until
    cancelled; reports the running :class:`Simulator` once both serve.

    Raises:
        SimulatorError: ``store`` is unreadable or a kept port is taken.
    """
    sim = Simulator(token_ttl_s=token_ttl_s, store=store)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        await tg.start(
            lambda task_status: serve_sim_control(nc, sim, event_log, task_status=task_status)
        )
        task_status.started(sim)
