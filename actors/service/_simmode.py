"""Which Telegram the service talks to, and the parts that come with it.

- A ``telegram`` port given by the caller (the benchmarks' in-process fake): used as it is.
- Real Telegram (``TGQR_API_ID``/``TGQR_API_HASH``): Telethon with a breaker per DC.
- Simulator mode, own simulator (the default): the simulator runs in this service's task tree
  (or the caller's ``sim``) and this service answers ``tgqr.sim.>``.
- Simulator mode, shared (``--sim shared``): the simulator of ``tgqr sim serve``, found on
  ``tgqr.sim.info``; this service serves no ``tgqr.sim.*``, so the phone reaches one simulator.

With Telethon, each DC has a circuit breaker (:class:`~actors.telegram.DcBreakers`); its
openings and closings are recorded on the ``_telegram`` chain by a part started here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from anyio.abc import TaskGroup
from nats.aio.client import Client

from actors.sim import Simulator, find_shared_simulator, serve_sim_control
from actors.telegram import (
    BreakerOpenError,
    DcBreakers,
    TelegramPort,
    TelethonTelegram,
    record_breaker_changes,
)
from events import EventLog

from ._config import ServiceConfig
from ._parts import keep_running

__all__ = ["TelegramWiring", "wire_telegram"]


@dataclass(frozen=True, slots=True)
class TelegramWiring:
    """The port the actors use, the simulator this service runs (if any), and the check a
    new login makes before it is stored (raises BreakerOpenError while its DC is down)."""

    telegram: TelegramPort
    sim: Simulator | None
    gate: Callable[[], None] | None = None
    breakers: DcBreakers | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def wire_telegram(
    config: ServiceConfig,
    tg: TaskGroup,
    nc: Client,
    event_log: EventLog,
    *,
    sim: Simulator | None,
    telegram: TelegramPort | None,
    rng: random.Random,
) -> TelegramWiring:
    """Start what the chosen Telegram needs in ``tg``; blocks until it serves (in shared
    mode: until ``tgqr sim serve`` answers, at most 30 s).

    Raises:
        SimulatorError: shared mode and no shared simulator answered in time.
    """
    if telegram is not None:
        return TelegramWiring(telegram, None)
    breakers = DcBreakers(clock=time.monotonic, random=rng.random)
    adapter: TelethonTelegram
    if not config.simulated:
        sim = None
        adapter = TelethonTelegram(
            api_id=config.api_id or 0,
            api_hash=config.api_hash or "",
            throttle_s=config.throttle_s,
            breakers=breakers,
        )
    elif config.sim_shared:
        sim = None
        shared = await find_shared_simulator(nc)
        adapter = TelethonTelegram.for_simulator(
            shared, throttle_s=config.throttle_s, breakers=breakers
        )
    else:
        if sim is None:
            # Its ports, keys and accounts are kept: sessions outlive a restart.
            sim = Simulator(token_ttl_s=config.sim_token_ttl_s, store=config.data_dir / "sim")
            await tg.start(sim.run)
        adapter = TelethonTelegram.for_simulator(
            sim, throttle_s=config.throttle_s, breakers=breakers
        )
        running = sim
        await tg.start(
            keep_running,
            "simulator phone",
            lambda task_status: serve_sim_control(nc, running, event_log, task_status=task_status),
            rng.random,
        )
    await tg.start(
        keep_running,
        "Telegram breakers",
        lambda task_status: record_breaker_changes(
            breakers, event_log, _utcnow, task_status=task_status
        ),
        rng.random,
    )

    def gate() -> None:
        dc = adapter.new_login_dc
        wait = breakers.retry_after(dc)
        if wait is not None:
            raise BreakerOpenError(dc, round(wait, 3))

    return TelegramWiring(adapter, sim, gate, breakers)
