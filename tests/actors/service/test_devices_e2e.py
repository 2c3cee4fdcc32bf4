"""A tenant's device and the phone's terminations, end to end: the service, the simulator over
TCP and real Telethon (tgqr's and the app's)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from telethon import TelegramClient, errors, functions, types
from telethon.sessions import StringSession

from actors.lease_client import lease_session
from actors.service import NatsServer, ServiceConfig
from actors.sim import Simulator
from actors.telegram import SIMULATOR_API_HASH, SIMULATOR_API_ID

from ._apps import run_cli
from .conftest import Driver, driving

pytestmark = pytest.mark.anyio

ACME = {"model": "Acme Parser", "system": "Linux", "app_version": "3.0", "lang": "de"}


@pytest.fixture
async def fast_validation(
    service_config: ServiceConfig, nats_server: NatsServer
) -> AsyncIterator[Driver]:
    """The service with TGQR_VALIDATE_SECONDS=1."""
    policy = replace(service_config.policy, validate_every_s=1.0)
    config = replace(service_config, policy=policy)
    async with driving(config, nats_server.url) as running:
        yield running


async def _log_in(driver: Driver, tenant: str, user_id: int, **start: Any) -> None:
    assert (await driver.command(tenant, "start", **start))["ok"]
    await driver.wait_for(tenant, "QrIssued")
    assert (await driver.scan(tenant, user_id))["ok"]
    await driver.wait_for(tenant, "Authorized")


async def _devices(driver: Driver, user_id: int) -> list[dict[str, Any]]:
    reply = await driver.request("tgqr.sim.devices", {"user_id": user_id})
    assert reply["ok"], reply
    devices: list[dict[str, Any]] = reply["devices"]
    return devices


def _kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e.get("reason") or e.get("noticed_by") or "") for e in events]


async def test_the_phone_lists_the_tenants_device_also_after_the_app_connects(
    driver: Driver,
) -> None:
    """``start`` with a device: the simulator lists it after login; the lease hands the same
    fields to the app, whose Telethon client keeps the entry unchanged (Telethon's own
    defaults would replace it with the host's machine name)."""
    await _log_in(driver, "acme", 3001, device=ACME)
    started = (await driver.events("acme"))[0]
    assert started["device"] == ACME
    (seen,) = await _devices(driver, 3001)
    expected = ("Acme Parser", "Linux", "3.0", "de")
    assert (seen["device_model"], seen["system_version"], seen["app_version"]) == expected[:3]
    assert seen["lang_code"] == "de"
    assert seen["peer"].startswith("127.0.0.1:")
    async with lease_session(driver.nc, "acme", holder="parser-1", ttl_s=60) as lease:
        assert lease.device["device_model"] == "Acme Parser"
        assert lease.device["system_version"] == "Linux"
        Simulator.register_with_telethon()
        client = TelegramClient(
            StringSession(lease.session), SIMULATOR_API_ID, SIMULATOR_API_HASH, **lease.device
        )
        await client.connect()
        try:
            me = await client.get_me()
            assert me is not None
            assert me.id == 3001
        finally:
            await client.disconnect()
        (after,) = await _devices(driver, 3001)
        assert after["id"] == seen["id"]
        assert after["peer"] != seen["peer"]  # the app's own connection
        assert (after["device_model"], after["system_version"]) == ("Acme Parser", "Linux")


async def test_a_session_ended_from_the_phone_while_leased(driver: Driver) -> None:
    """The phone ends the session while an app holds it: the app's next call is refused, it
    reports the revocation, and tgqr records the lease's end, ``SessionRevoked`` and
    ``LoggedOut(revoked)``, and forgets the session."""
    await _log_in(driver, "beta", 3002)
    async with lease_session(driver.nc, "beta", holder="parser-2", ttl_s=60) as lease:
        (device,) = await _devices(driver, 3002)
        ended = await driver.request(
            "tgqr.sim.terminate", {"user_id": 3002, "device": device["id"]}
        )
        assert ended["ok"], ended
        client = TelegramClient(
            StringSession(lease.session), SIMULATOR_API_ID, SIMULATOR_API_HASH, **lease.device
        )
        await client.connect()
        try:
            with pytest.raises(errors.AuthKeyUnregisteredError):
                await client(functions.users.GetUsersRequest([types.InputUserSelf()]))
        finally:
            await client.disconnect()
        await lease.release(revoked=True)
    await driver.wait_for("beta", "LoggedOut")
    assert _kinds((await driver.events("beta"))[-4:]) == [
        ("SessionLeased", ""),
        ("SessionReleased", "revoked"),
        ("SessionRevoked", "holder"),
        ("LoggedOut", "revoked"),
    ]
    assert (await driver.command("beta", "logout"))["error"]["code"] == "wrong_state"
    assert await _devices(driver, 3002) == []


async def test_a_session_ended_from_the_phone_while_idle_is_seen_by_validation(
    fast_validation: Driver,
) -> None:
    """Idle and authorized, the session is ended from the phone: within the validation
    interval tgqr records ``SessionRevoked`` (noticed by validation) then ``LoggedOut``."""
    driver = fast_validation
    await _log_in(driver, "gamma", 3003, device=ACME)
    (device,) = await _devices(driver, 3003)
    assert device["device_model"] == "Acme Parser"
    reply = await driver.request("tgqr.sim.terminate", {"user_id": 3003, "device": device["id"]})
    assert reply["ok"], reply
    await driver.wait_for("gamma", "LoggedOut", within_s=15)
    assert _kinds((await driver.events("gamma"))[-3:]) == [
        ("Authorized", ""),
        ("SessionRevoked", "validation"),
        ("LoggedOut", "revoked"),
    ]


async def test_logout_after_the_phone_ended_the_session_records_the_revocation(
    driver: Driver,
) -> None:
    """tgqr's next call notices: ``logout`` of a session ended from the phone records
    ``SessionRevoked`` (noticed by logout) and ``LoggedOut(revoked)``, not a clean logout."""
    await _log_in(driver, "delta", 3004)
    (device,) = await _devices(driver, 3004)
    await driver.request("tgqr.sim.terminate", {"user_id": 3004, "device": device["id"]})
    reply = await driver.command("delta", "logout")
    assert reply["ok"], reply
    assert reply["state"] == "logged_out"
    assert _kinds((await driver.events("delta"))[-2:]) == [
        ("SessionRevoked", "logout"),
        ("LoggedOut", "revoked"),
    ]


@pytest.mark.slow
async def test_the_cli_lists_and_ends_devices(driver: Driver, nats_server: NatsServer) -> None:
    """``tgqr sim devices --json`` prints the list; ``tgqr sim terminate`` ends one; an unknown
    device is one clear line and exit 1."""
    await _log_in(driver, "eps", 3005, device=ACME)
    listed = await run_cli(nats_server, "sim", "devices", "--user", "3005", "--json")
    assert listed.returncode == 0, listed.stderr
    (item,) = json.loads(listed.stdout)
    assert set(item) == {"id", "device_model", "system_version", "app_version", "lang_code", "peer"}
    assert item["device_model"] == "Acme Parser"
    plain = await run_cli(nats_server, "sim", "devices", "--user", "3005")
    assert b"Acme Parser, Linux" in plain.stdout
    ended = await run_cli(nats_server, "sim", "terminate", "--user", "3005", "--device", item["id"])
    assert ended.returncode == 0, ended.stderr
    again = await run_cli(nats_server, "sim", "terminate", "--user", "3005", "--device", item["id"])
    assert again.returncode == 1
    assert again.stderr.decode().count("\n") == 1
    assert b"no device" in again.stderr
