"""The Telegram breaker end to end: the simulator (real Telethon against it) stops and comes
back. Five logins that cannot connect open DC 1's breaker: a new ``start`` is refused at once
with ``unavailable`` and ``retry_after_s`` (nothing stored for it), and ``TelegramDown`` lands on
the service's ``_telegram`` chain. With the simulator back, a start after the cool-down is the
half-open probe: it connects, ``TelegramUp`` is recorded and the login shows a QR. The service's
chain is no tenant: ``status`` does not list it, ``health`` has a ``telegram`` part, and
commands for ``_telegram`` are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest

from actors.service import NatsServer, RunningService, ServiceConfig, run_service
from actors.sim import Simulator

from .conftest import Driver

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@asynccontextmanager
async def _driving(config: ServiceConfig, url: str, sim: Simulator) -> AsyncIterator[Driver]:
    """The service against ``sim`` (which outlives it, as Telegram would)."""
    async with anyio.create_task_group() as tg:
        service: RunningService = await tg.start(
            lambda task_status: run_service(config, sim=sim, task_status=task_status)
        )
        nc = await nats.connect(url, max_reconnect_attempts=0)
        try:
            yield Driver(nc, service)
        finally:
            await nc.drain()
            tg.cancel_scope.cancel()


async def _start_until_accepted(driver: Driver, prefix: str) -> str:
    """``start`` as a client should: on ``unavailable`` wait the ``retry_after_s`` given (a
    new tenant each time: a refused start still counts for the tenant's rate limit). Returns
    the tenant whose start was accepted."""
    with anyio.fail_after(20):
        for n in range(100):
            tenant = f"{prefix}{n}"
            reply = await driver.command(tenant, "start")
            if reply["ok"]:
                return tenant
            error = reply["error"]
            assert error["code"] == "unavailable", reply
            await anyio.sleep(error["retry_after_s"])  # the service's own retry hint
    raise AssertionError("never accepted")


async def test_simulator_down_trips_and_back_resets_the_breaker(
    tmp_path: Path, service_config: ServiceConfig, nats_server: NatsServer
) -> None:
    """Down: fail fast with unavailable + retry_after_s, TelegramDown; back: TelegramUp, QR."""
    sim = Simulator(store=tmp_path / "sim")  # kept ports: it comes back where it was
    async with anyio.create_task_group() as sim_tg:
        sim_scope = anyio.CancelScope()

        async def run_sim(scope: anyio.CancelScope, *, task_status: Any) -> None:
            with scope:
                await sim.run(task_status=task_status)  # the ``sim`` of the moment

        await sim_tg.start(run_sim, sim_scope)
        async with _driving(service_config, nats_server.url, sim) as driver:
            # the service's adapter now points at the running simulator's DCs
            sim_scope.cancel()  # Telegram is gone
            for n in range(5):
                assert (await driver.command(f"t{n}", "start"))["ok"]
            down = await driver.wait_for("_telegram", "TelegramDown")
            assert down["dc"] == sim.home_dc
            assert down["failures"] == 5
            assert down["retry_after_s"] > 0
            refused = await driver.command("late", "start")
            assert refused["ok"] is False
            assert refused["error"]["code"] == "unavailable"
            assert 0 < refused["error"]["retry_after_s"] <= 60
            assert await driver.events("late") == []  # refused before anything was stored
            health = await driver.request("tgqr.query.health", {})
            assert (
                "dcs_down" in health["telegram"]
            )  # (the projector may lag: see test_service_chain)
            status = await driver.request("tgqr.query.status", {})
            assert "_telegram" not in [item["tenant"] for item in status["items"]]
            reserved = await driver.command("_telegram", "start")
            assert reserved["error"]["code"] == "invalid_tenant"

            # Telegram is back, on the same ports (another process would take them back
            # from the store the same way).
            sim = Simulator(store=tmp_path / "sim")
            await sim_tg.start(run_sim, anyio.CancelScope())
            after = await _start_until_accepted(driver, "after")
            up = await driver.wait_for("_telegram", "TelegramUp")
            assert up["dc"] == sim.home_dc
            assert up["down_s"] > 0
            qr = await driver.wait_for(after, "QrIssued")
            assert qr["url"].startswith("tg://login?token=")
            chain = [e["type"] for e in await driver.events("_telegram")]
            assert chain.count("TelegramDown") == 1
        sim_tg.cancel_scope.cancel()
