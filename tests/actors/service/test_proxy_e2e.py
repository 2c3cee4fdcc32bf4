"""A tenant's proxy, end to end: ``start`` with ``socks5://user:pass@...`` (Debian's
microsocks on loopback), the service and the simulator over TCP, real Telethon; the proxy's
credentials stay sealed and never reach the log."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from telethon import TelegramClient
from telethon.sessions import StringSession

from actors.lease_client import lease_session
from actors.sim import Simulator
from actors.telegram import SIMULATOR_API_HASH, SIMULATOR_API_ID
from actors.telegram._telethon_mtproxy import MTProxyRandomizedIntermediate
from events.jetstream import STREAM
from tests.actors.telegram._mtproxy import mtproxy
from tests.actors.telegram.microsocks import OUTGOING, microsocks

from .conftest import Driver

pytestmark = pytest.mark.anyio


async def _raw_log(driver: Driver, tenant: str) -> bytes:
    return json.dumps(await driver.events(tenant)).encode()


async def test_a_tenant_logs_in_through_its_socks5_proxy_and_the_app_too(driver: Driver) -> None:
    """The simulator sees tgqr's and then the app's connection come from the proxy; the log
    names the proxy by label and fingerprint only; the lease hands the app the proxy sealed."""
    async with microsocks() as socks:
        reply = await driver.command("px", "start", proxy=socks.url())
        assert reply["ok"], reply
        await driver.wait_for("px", "QrIssued")
        assert (await driver.scan("px", 4001))["ok"]
        await driver.wait_for("px", "Authorized")
        started = (await driver.events("px"))[0]
        assert started["proxy"].startswith(f"socks5://127.0.0.1:{socks.port} #")
        (seen,) = (await driver.request("tgqr.sim.devices", {"user_id": 4001}))["devices"]
        assert seen["peer"].startswith(f"{OUTGOING}:")
        async with lease_session(driver.nc, "px", holder="parser-1", ttl_s=60) as lease:
            assert isinstance(lease.proxy, dict)
            assert (lease.proxy["addr"], lease.proxy["port"]) == ("127.0.0.1", socks.port)
            assert lease.proxy["password"] == socks.password
            Simulator.register_with_telethon()
            client = TelegramClient(
                StringSession(lease.session),
                SIMULATOR_API_ID,
                SIMULATOR_API_HASH,
                proxy=lease.proxy,
                **lease.device,
            )
            await client.connect()
            try:
                me = await client.get_me()
                assert me is not None
                assert me.id == 4001
            finally:
                await client.disconnect()
        (after,) = (await driver.request("tgqr.sim.devices", {"user_id": 4001}))["devices"]
        assert after["peer"].startswith(f"{OUTGOING}:")
        assert after["peer"] != seen["peer"]
        assert (await driver.command("px", "logout"))["ok"]  # through the proxy as well
        assert socks.password.encode() not in await _raw_log(driver, "px")
        assert socks.user.encode() not in await _raw_log(driver, "px")


async def test_a_wrong_proxy_password_fails_the_login_clearly(driver: Driver) -> None:
    """microsocks refuses the password: ``LoginFailed(proxy_auth_failed)``, and neither
    password is in the log."""
    async with microsocks() as socks:
        wrong = socks.url(password="not-the-password")
        assert (await driver.command("wp", "start", proxy=wrong))["ok"]
        failed = await driver.wait_for("wp", "LoginFailed")
    assert failed["reason"] == "proxy_auth_failed"
    raw = await _raw_log(driver, "wp")
    assert b"not-the-password" not in raw
    assert socks.password.encode() not in raw


async def test_a_proxy_nobody_answers_on_fails_the_login_clearly(driver: Driver) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    proxy = f"socks5://u:p@127.0.0.1:{free}"
    assert (await driver.command("np", "start", proxy=proxy))["ok"]
    failed = await driver.wait_for("np", "LoginFailed")
    assert failed["reason"] == "proxy_unreachable"


async def test_a_bad_proxy_url_is_refused_in_plain_words(driver: Driver) -> None:
    reply = await driver.command("bp", "start", proxy="mtproxy://ee00@1.2.3.4:443")
    assert reply["error"]["code"] == "invalid_request"
    assert "SECRET 32 hex digits" in reply["error"]["message"]
    assert "ee00" not in reply["error"]["message"]
    reply = await driver.command("bp", "start", proxy="socks5://u:hunter2@host")
    assert "hunter2" not in reply["error"]["message"]


async def test_every_later_connection_of_the_tenant_goes_through_its_proxy(
    driver: Driver,
) -> None:
    """With the proxy gone, ``logout`` cannot reach Telegram (it never goes direct): the reply
    is ``unavailable``, the tenant stays authorized, and nothing is logged out."""
    async with microsocks() as socks:
        assert (await driver.command("gone", "start", proxy=socks.url()))["ok"]
        await driver.wait_for("gone", "QrIssued")
        assert (await driver.scan("gone", 4004))["ok"]
        await driver.wait_for("gone", "Authorized")
    reply = await driver.command("gone", "logout")
    assert reply["error"]["code"] == "unavailable", reply
    assert (await driver.events("gone"))[-1]["type"] == "Authorized"
    assert len((await driver.request("tgqr.sim.devices", {"user_id": 4004}))["devices"]) == 1


async def _status(driver: Driver, tenant: str) -> dict[str, Any]:
    """The tenant's status item once the projection holds everything stored so far."""
    projector = driver.service.projector
    assert projector is not None
    await projector.wait_for((await driver.nc.jetstream().stream_info(STREAM)).state.last_seq)
    reply = await driver.request("tgqr.query.status", {"tenant": tenant})
    (item,) = reply["items"]
    return dict(item)


@pytest.mark.slow
async def test_a_tenant_logs_in_through_its_mtproxy_and_the_app_too(driver: Driver) -> None:
    """``mtproxy://ddSECRET@...``: tgqr's login and the app's leased client both go through the
    MTProxy; the log and the status name it by label and fingerprint, never the secret."""
    sim = driver.service.sim
    assert sim is not None
    home = sim.home_dc
    async with mtproxy({home: sim.dc_address(home)}) as server:
        assert (await driver.command("mt", "start", proxy=server.url(padded=True)))["ok"]
        await driver.wait_for("mt", "QrIssued")
        assert (await driver.scan("mt", 4011))["ok"]
        await driver.wait_for("mt", "Authorized")
        label = f"mtproxy://127.0.0.1:{server.port} #"
        assert (await driver.events("mt"))[0]["proxy"].startswith(label)
        status = await _status(driver, "mt")
        assert status["proxy"].startswith(label)
        forwarded = len(server.forwarded)
        async with lease_session(driver.nc, "mt", holder="parser-1", ttl_s=60) as lease:
            assert lease.proxy == ("127.0.0.1", server.port, "dd" + server.secret)
            Simulator.register_with_telethon()
            client = TelegramClient(
                StringSession(lease.session),
                SIMULATOR_API_ID,
                SIMULATOR_API_HASH,
                connection=MTProxyRandomizedIntermediate,
                proxy=lease.proxy,
                **lease.device,
            )
            await client.connect()
            try:
                me = await client.get_me()
                assert me is not None
                assert me.id == 4011
            finally:
                await client.disconnect()
        assert len(server.forwarded) > forwarded
        assert not server.refused
    assert server.secret.encode() not in await _raw_log(driver, "mt")
    assert server.secret not in json.dumps(status)


@pytest.mark.slow
async def test_a_wrong_mtproxy_secret_fails_the_login_clearly(driver: Driver) -> None:
    """The MTProxy closes a connection made with another secret: ``LoginFailed
    (proxy_auth_failed)``; neither secret is in the log or the status."""
    sim = driver.service.sim
    assert sim is not None
    home = sim.home_dc
    wrong = "0f" * 16
    async with mtproxy({home: sim.dc_address(home)}) as server:
        assert (await driver.command("mw", "start", proxy=server.url(wrong)))["ok"]
        failed = await driver.wait_for("mw", "LoginFailed")
    assert failed["reason"] == "proxy_auth_failed"
    assert server.refused
    status = json.dumps(await _status(driver, "mw"))
    for secret in (wrong, server.secret):
        assert secret.encode() not in await _raw_log(driver, "mw")
        assert secret not in status
