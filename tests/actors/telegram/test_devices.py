"""A tenant's client names itself: the device fields reach the simulator's Devices list, and
the phone ends a session there (real Telethon over TCP)."""

from __future__ import annotations

import anyio
import pytest

from actors.sim import SimulatorError
from actors.telegram import Device, LoginSuccess, LoginToken, SessionRevokedError, TelethonTelegram

from .tg_harness import SimHarness

pytestmark = pytest.mark.anyio

ACME = Device(model="Acme Parser", system="Linux", app_version="2.1", lang="de", system_lang="fr")


async def _log_in(
    port: TelethonTelegram, sim: SimHarness, user_id: int, device: Device | None = None
) -> str:
    async with port.open_client("t", device=device) as client:
        token = await client.export_token()
        assert isinstance(token, LoginToken)
        sim.scan(url=token.url, user_id=user_id)
        with anyio.fail_after(10):
            await client.wait_scanned()
        assert await client.export_token() == LoginSuccess(user_id, sim.home_dc)
        return client.session_string()


async def test_the_simulator_lists_the_device_a_tenant_logged_in_as(
    running_sim: SimHarness,
) -> None:
    """Every init-connection field the adapter is given is what the phone lists, with the
    address the client came from."""
    port = TelethonTelegram.for_simulator(running_sim.sim)
    await _log_in(port, running_sim, 21, device=ACME)
    (seen,) = running_sim.sim.devices(21)
    assert (seen.device_model, seen.system_version, seen.app_version) == (
        "Acme Parser",
        "Linux",
        "2.1",
    )
    assert (seen.lang_code, seen.system_lang_code) == ("de", "fr")
    assert seen.peer.startswith("127.0.0.1:")
    assert set(seen.as_json()) == {
        "id", "device_model", "system_version", "app_version", "lang_code", "peer"
    }  # fmt: skip


async def test_the_adapters_default_device_is_sent_without_one(running_sim: SimHarness) -> None:
    """No device given: the adapter's own (the service's TGQR_DEVICE_* defaults), never
    Telethon's guess from the host."""
    port = TelethonTelegram.for_simulator(running_sim.sim, device=Device(model="Svc", system="BSD"))
    await _log_in(port, running_sim, 22)
    (seen,) = running_sim.sim.devices(22)
    assert (seen.device_model, seen.system_version) == ("Svc", "BSD")


async def test_a_restored_session_names_itself_again(running_sim: SimHarness) -> None:
    """The device list shows what the session's latest connection said (one entry per
    authorization, not per connection)."""
    port = TelethonTelegram.for_simulator(running_sim.sim)
    session = await _log_in(port, running_sim, 23, device=ACME)
    async with port.open_client("t", session, device=Device(model="Other")) as client:
        assert await client.get_me() == 23
    (seen,) = running_sim.sim.devices(23)
    assert seen.device_model == "Other"


async def test_terminate_ends_that_session_only(running_sim: SimHarness) -> None:
    """The phone ends one device: that session's next call is refused as revoked, the other
    session of the same user still works."""
    port = TelethonTelegram.for_simulator(running_sim.sim)
    first = await _log_in(port, running_sim, 24, device=ACME)
    second = await _log_in(port, running_sim, 24, device=Device(model="Keep"))
    devices = {d.device_model: d.id for d in running_sim.sim.devices(24)}
    running_sim.sim.terminate(24, devices["Acme Parser"])
    async with port.open_client("t", first) as client:
        with pytest.raises(SessionRevokedError):
            await client.get_me()
    async with port.open_client("t", second, device=Device(model="Keep")) as client:
        assert await client.get_me() == 24
    assert [d.device_model for d in running_sim.sim.devices(24)] == ["Keep"]
    with pytest.raises(SimulatorError, match="no device"):
        running_sim.sim.terminate(24, devices["Acme Parser"])
    with pytest.raises(SimulatorError, match="no user"):
        running_sim.sim.devices(999)
