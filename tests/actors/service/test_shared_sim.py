"""One shared simulator for several instances: ``tgqr sim serve`` (a child process, role
``service`` on a nats-server with auth) and two services with ``TGQR_SIM=shared``. A login is
started, its QR scanned through ``tgqr.sim.scan`` and authorized; ``tgqr.sim.info`` answers
with the DCs. ``sim serve`` restarted: the next login works with nothing else restarted. Once
``sim serve`` stops, nobody answers ``tgqr.sim.*`` any more: neither
instance serves it, so the scan was answered once, by the shared simulator."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import nats.errors
import pytest

from actors.service import ConfigError, ServiceConfig, load_chain_key, run_service
from actors.sim import SimulatorError, find_shared_simulator
from actors.vault import load_key_ring
from tests.conftest import AuthServer

from .conftest import Driver

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def with_password(server: AuthServer) -> str:
    """The server's URL with the service role's user and password in it."""
    service = server.credentials["service"]
    return server.url.replace("nats://", f"nats://{service.user}:{service.password}@")


@contextmanager
def sim_serve(url: str, data: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``tgqr sim serve --nats URL --data DATA`` in a child process (stopped on exit)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
    child = subprocess.Popen(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "actors.cli", "sim", "serve", "--nats", url, "--data", str(data)],
        cwd=ROOT,
        env=env | {"TGQR_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)


async def stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and wait for a clean exit."""
    child.send_signal(signal.SIGTERM)
    with anyio.fail_after(10):
        await anyio.to_thread.run_sync(child.wait)
    assert child.returncode == 0, child.stderr.read() if child.stderr else ""


def shared_keys(first: Path, *others: Path) -> None:
    """Every instance and the simulator get the same chain key and vault keys."""
    load_chain_key(first, env={}, create=True)
    load_key_ring(first, env={}, create=True)
    for other in others:
        other.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in ("chain.key", "vault.key"):
            shutil.copy2(first / name, other / name)


async def test_two_instances_share_one_simulator(
    tmp_path: Path, auth_nats_server: AuthServer
) -> None:
    """A login through the shared simulator; only ``sim serve`` answers tgqr.sim.*."""
    url = with_password(auth_nats_server)
    one, two, sim_data = tmp_path / "one", tmp_path / "two", tmp_path / "simulator"
    one.mkdir(mode=0o700)
    shared_keys(one, two, sim_data)
    configs = [
        replace(
            ServiceConfig.from_env({"TGQR_SIM": "shared"}, data_dir=data, nats=url),
            throttle_s=(0.0, 0.0),
            http=None,
            metrics=None,
        )
        for data in (one, two)
    ]
    assert all(config.sim_shared for config in configs)
    with sim_serve(url, sim_data) as child:
        async with anyio.create_task_group() as tg:
            services = [
                await tg.start(lambda task_status, c=c: run_service(c, task_status=task_status))
                for c in configs
            ]
            assert [service.sim for service in services] == [None, None]
            nc = await auth_nats_server.connect("service")
            driver = Driver(nc, services[0])
            try:
                info = await driver.request("tgqr.sim.info", {})
                assert info["ok"] is True
                assert [dc["id"] for dc in info["dcs"]] == [1, 2]
                assert all(dc["host"] == "127.0.0.1" and dc["port"] > 0 for dc in info["dcs"])

                assert (await driver.command("alice", "start"))["ok"]
                await driver.wait_for("alice", "QrIssued")
                scanned = await driver.scan("alice", 4242)
                assert scanned == {"ok": True, "tenant": "alice", "user_id": 4242}
                authorized = await driver.wait_for("alice", "Authorized")
                assert authorized["user_id"] == 4242

                await stop(child)
                # It comes back on the same ports with the same RSA key (kept in its store):
                # the instances' new logins still go through, with nothing restarted.
                with sim_serve(url, sim_data) as again:
                    assert (await driver.command("bob", "start"))["ok"]
                    await driver.wait_for("bob", "QrIssued")
                    assert (await driver.scan("bob", 4343))["ok"]
                    assert (await driver.wait_for("bob", "Authorized"))["user_id"] == 4343
                    await stop(again)
                for subject in ("tgqr.sim.scan", "tgqr.sim.info"):
                    with pytest.raises(nats.errors.NoRespondersError):
                        await nc.request(subject, json.dumps({"user_id": 1}).encode(), timeout=5)
            finally:
                await nc.drain()
                tg.cancel_scope.cancel()


async def test_shared_mode_without_a_simulator_fails_clearly(
    auth_nats_server: AuthServer,
) -> None:
    """No ``tgqr sim serve``: the wait at start-up is bounded and its error names the fix."""
    nc = await auth_nats_server.connect("service")
    try:
        with anyio.fail_after(5), pytest.raises(SimulatorError, match="start `tgqr sim serve"):
            await find_shared_simulator(nc, wait_s=0.5)
    finally:
        await nc.drain()


async def test_the_embedded_simulator_answers_info_too(driver: Driver) -> None:
    """Own-simulator mode (the default) answers tgqr.sim.info with its DCs and key."""
    sim = driver.service.sim
    assert sim is not None
    info = await driver.request("tgqr.sim.info", {})
    assert info["ok"] is True
    assert [(dc["id"], dc["host"], dc["port"]) for dc in info["dcs"]] == sim.dcs()
    assert info["public_key"] == sim.public_key_pem


@pytest.mark.parametrize(("value", "shared"), [("shared", True), ("own", False), ("", False)])
def test_sim_mode_from_the_environment(value: str, *, shared: bool) -> None:
    """TGQR_SIM=shared turns shared mode on; own or unset keep the instance's own simulator."""
    config = ServiceConfig.from_env({"TGQR_SIM": value}, data_dir=Path("unused"))
    assert config.sim_shared is shared


def test_an_unknown_sim_mode_is_refused() -> None:
    """Anything else is a configuration error naming the setting."""
    with pytest.raises(ConfigError, match="TGQR_SIM"):
        ServiceConfig.from_env({"TGQR_SIM": "cloud"}, data_dir=Path("unused"))
