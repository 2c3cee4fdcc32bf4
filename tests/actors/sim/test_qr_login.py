"""QR login against the simulator with an unmodified Telethon client and raw requests."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import pytest
from telethon import TelegramClient, errors, events, functions, types
from telethon.password import compute_check

from actors.sim import Simulator, SimulatorError

from ._support import API_HASH, API_ID, FakeClock, OpenClient

pytestmark = pytest.mark.anyio


def export_request(except_ids: list[int] | None = None) -> Any:
    return functions.auth.ExportLoginTokenRequest(API_ID, API_HASH, except_ids or [])


def login_url(token: bytes) -> str:
    return "tg://login?token=" + base64.urlsafe_b64encode(token).decode().rstrip("=")


async def scan_and_wait(client: TelegramClient, sim: Simulator, user_id: int, **kwargs: Any) -> Any:
    """Export, let the phone scan, wait for updateLoginToken; returns the exported token."""
    scanned = anyio.Event()

    async def on_update(_update: Any) -> None:
        scanned.set()

    client.add_event_handler(on_update, events.Raw(types.UpdateLoginToken))
    exported = await client(export_request())
    assert isinstance(exported, types.auth.LoginToken)
    sim.scan(user_id=user_id, url=login_url(exported.token), **kwargs)
    with anyio.fail_after(5):
        await scanned.wait()
    client.remove_event_handler(on_update)
    return exported


async def test_handshake_and_connect(sim: Simulator, open_client: OpenClient) -> None:
    """A new client creates an auth key, initialises the connection and is not logged in."""
    async with open_client() as client:
        assert client.is_connected()
        assert await client.get_me() is None
        assert not await client.is_user_authorized()
    stats = sim.statistics()
    assert stats.handshakes >= 1
    assert stats.malformed_connections == 0


async def test_export_expires_after_token_ttl(
    sim: Simulator, open_client: OpenClient, clock: FakeClock
) -> None:
    """``expires`` is absolute server time, at most token_ttl_s ahead; each export is new."""
    async with open_client() as client:
        first = await client(export_request())
        second = await client(export_request())
    assert isinstance(first, types.auth.LoginToken)
    assert clock.now + 30 - 1 <= first.expires.timestamp() <= clock.now + 30
    assert first.token != second.token
    assert len(first.token) >= 16


async def test_scan_pushes_update_then_export_succeeds(
    sim: Simulator, open_client: OpenClient
) -> None:
    """The phone's scan reaches the exporting client as updateLoginToken; the next export
    logs it in."""
    async with open_client() as client:
        await scan_and_wait(client, sim, 1001)
        result = await client(export_request())
        assert isinstance(result, types.auth.LoginTokenSuccess)
        assert result.authorization.user.id == 1001
        me = await client.get_me()
        assert me is not None
        assert me.id == 1001
    assert sim.statistics().logins == 1


async def test_export_before_scan_is_a_plain_token(sim: Simulator, open_client: OpenClient) -> None:
    """Without a scan the client keeps getting fresh plain tokens."""
    async with open_client() as client:
        await client(export_request())
        again = await client(export_request())
    assert isinstance(again, types.auth.LoginToken)


async def test_scan_rejects_unknown_used_and_expired_tokens(
    sim: Simulator, open_client: OpenClient, clock: FakeClock
) -> None:
    """The phone refuses what Telegram's app would refuse, with a clear SimulatorError."""
    async with open_client() as client:
        with pytest.raises(SimulatorError, match="unknown"):
            sim.scan(user_id=7, token=b"nope")
        with pytest.raises(SimulatorError, match="login URL"):
            sim.scan(user_id=7, url="https://example.org")
        late = await client(export_request())
        clock.now += 31
        with pytest.raises(SimulatorError, match="expired"):
            sim.scan(user_id=7, token=late.token)
        excluded = await client(export_request(except_ids=[7]))
        with pytest.raises(SimulatorError, match="already logged in"):
            sim.scan(user_id=7, token=excluded.token)
        used = await client(export_request())
        sim.scan(user_id=7, token=used.token)
        with pytest.raises(SimulatorError, match="already used"):
            sim.scan(user_id=7, token=used.token)


async def test_migration_to_the_users_dc(sim: Simulator, open_client: OpenClient) -> None:
    """A user on DC 2 gets loginTokenMigrateTo; after _switch_dc(2) the import logs in."""
    sim.add_user(2002, dc_id=2)
    async with open_client() as client:
        await scan_and_wait(client, sim, 2002)
        migrate = await client(export_request())
        assert isinstance(migrate, types.auth.LoginTokenMigrateTo)
        assert migrate.dc_id == 2
        await client._switch_dc(2)
        assert client.session.port == sim.dc_address(2)[1]
        result = await client(functions.auth.ImportLoginTokenRequest(migrate.token))
        assert isinstance(result, types.auth.LoginTokenSuccess)
        assert result.authorization.user.id == 2002
        with pytest.raises(errors.AuthTokenAlreadyAcceptedError):
            await client(functions.auth.ImportLoginTokenRequest(migrate.token))


async def test_import_refuses_invalid_and_expired_tokens(
    sim: Simulator, open_client: OpenClient, clock: FakeClock
) -> None:
    """AUTH_TOKEN_INVALID for garbage, AUTH_TOKEN_EXPIRED when the migration took too long."""
    sim.add_user(2003, dc_id=2)
    async with open_client() as client:
        await scan_and_wait(client, sim, 2003)
        migrate = await client(export_request())
        await client._switch_dc(2)
        with pytest.raises(errors.AuthTokenInvalidError):
            await client(functions.auth.ImportLoginTokenRequest(b"garbage"))
        clock.now += 31
        with pytest.raises(errors.AuthTokenExpiredError):
            await client(functions.auth.ImportLoginTokenRequest(migrate.token))


async def test_two_factor_wrong_then_right_password(
    sim: Simulator, open_client: OpenClient
) -> None:
    """SESSION_PASSWORD_NEEDED, then real SRP: a wrong password is refused, the right one
    logs in; each challenge is single use."""
    sim.add_user(3003, password="correct horse", hint="horse")
    async with open_client() as client:
        await scan_and_wait(client, sim, 3003)
        with pytest.raises(errors.SessionPasswordNeededError):
            await client(export_request())
        password = await client(functions.account.GetPasswordRequest())
        assert password.has_password
        assert password.hint == "horse"
        with pytest.raises(errors.PasswordHashInvalidError):
            await client(functions.auth.CheckPasswordRequest(compute_check(password, "wrong")))
        with pytest.raises(errors.SrpIdInvalidError):
            await client(
                functions.auth.CheckPasswordRequest(compute_check(password, "correct horse"))
            )
        fresh = await client(functions.account.GetPasswordRequest())
        assert fresh.srp_id != password.srp_id
        assert fresh.srp_B != password.srp_B
        result = await client(
            functions.auth.CheckPasswordRequest(compute_check(fresh, "correct horse"))
        )
        assert result.user.id == 3003
        me = await client.get_me()
        assert me.id == 3003


async def test_two_factor_after_migration(sim: Simulator, open_client: OpenClient) -> None:
    """The import on the user's DC can also answer SESSION_PASSWORD_NEEDED."""
    async with open_client() as client:
        await scan_and_wait(client, sim, 3004, password="pw", dc_id=2)
        migrate = await client(export_request())
        await client._switch_dc(migrate.dc_id)
        with pytest.raises(errors.SessionPasswordNeededError):
            await client(functions.auth.ImportLoginTokenRequest(migrate.token))
        password = await client(functions.account.GetPasswordRequest())
        result = await client(functions.auth.CheckPasswordRequest(compute_check(password, "pw")))
        assert result.user.id == 3004


async def test_flood_wait_surfaces_with_seconds(sim: Simulator, open_client: OpenClient) -> None:
    """flood_next makes the next call answer FLOOD_WAIT_X: Telethon raises FloodWaitError."""
    sim.flood_next("auth.exportLoginToken", 42)
    async with open_client() as client:
        with pytest.raises(errors.FloodWaitError) as caught:
            await client(export_request())
        assert caught.value.seconds == 42
        # The flood is scripted once only: the raw sender (no client-side memory) gets through.
        assert isinstance(await client._sender.send(export_request()), types.auth.LoginToken)


async def test_fail_next_is_a_server_error_once(sim: Simulator, open_client: OpenClient) -> None:
    """fail_next answers 500 INTERNAL to the next call only."""
    sim.fail_next("auth.exportLoginToken")
    async with open_client() as client:
        with pytest.raises(errors.ServerError):
            await client._sender.send(export_request())
        assert isinstance(await client._sender.send(export_request()), types.auth.LoginToken)


async def test_unknown_method_is_an_rpc_error(sim: Simulator, open_client: OpenClient) -> None:
    """A method the simulator does not implement is refused; the connection stays usable."""
    async with open_client() as client:
        with pytest.raises(errors.RPCError, match="METHOD_NOT_SUPPORTED"):
            await client._sender.send(functions.help.GetAppConfigRequest(hash=0))
        assert isinstance(await client(export_request()), types.auth.LoginToken)


async def test_api_id_invalid(sim: Simulator, open_client: OpenClient) -> None:
    """api_id 0 or an empty api_hash is API_ID_INVALID, as on Telegram."""
    async with open_client() as client:
        with pytest.raises(errors.ApiIdInvalidError):
            await client(functions.auth.ExportLoginTokenRequest(0, "", []))


async def log_in(client: TelegramClient, sim: Simulator, user_id: int) -> None:
    await scan_and_wait(client, sim, user_id)
    result = await client(export_request())
    if isinstance(result, types.auth.LoginTokenMigrateTo):
        await client._switch_dc(result.dc_id)
        result = await client(functions.auth.ImportLoginTokenRequest(result.token))
    assert isinstance(result, types.auth.LoginTokenSuccess)
    await client._on_login(result.authorization.user)


@pytest.mark.parametrize("dc_id", [1, 2])
async def test_saved_session_restores_login(
    sim: Simulator, open_client: OpenClient, dc_id: int
) -> None:
    """A StringSession saved after login works in a new client, on the user's DC."""
    sim.add_user(4000 + dc_id, dc_id=dc_id)
    async with open_client() as client:
        await log_in(client, sim, 4000 + dc_id)
        saved = client.session.save()
    assert saved
    async with open_client(session=saved) as restored:
        assert restored.session.dc_id == dc_id
        me = await restored.get_me()
        assert me is not None
        assert me.id == 4000 + dc_id


async def test_log_out_ends_the_authorization(sim: Simulator, open_client: OpenClient) -> None:
    """auth.logOut forgets the key's authorization: the saved session is no longer logged in."""
    async with open_client() as client:
        await log_in(client, sim, 5005)
        saved = client.session.save()
        assert await client.log_out()
    async with open_client(session=saved) as restored:
        assert await restored.get_me() is None


async def test_revoke_unauthorizes_every_session(sim: Simulator, open_client: OpenClient) -> None:
    """After revoke, a restored session is unauthorized and get_me returns None."""
    async with open_client() as client:
        await log_in(client, sim, 6006)
        saved = client.session.save()
    sim.revoke(6006)
    async with open_client(session=saved) as restored:
        assert await restored.get_me() is None
        with pytest.raises(errors.AuthKeyUnregisteredError):
            await restored(functions.updates.GetStateRequest())


async def test_concurrent_clients(sim: Simulator, open_client: OpenClient) -> None:
    """Several clients log in at once, each getting its own update and authorization."""

    async def one(user_id: int) -> None:
        async with open_client() as client:
            await log_in(client, sim, user_id)
            me = await client.get_me()
            assert me.id == user_id

    async with anyio.create_task_group() as tg:
        for user_id in range(7000, 7010):
            tg.start_soon(one, user_id)
    stats = sim.statistics()
    assert stats.logins == 10
    assert stats.malformed_connections == 0
