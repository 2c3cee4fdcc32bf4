"""The TelegramPort contract, held against the in-process fake and against the Telethon
adapter talking MTProto to the simulator (the ``harness`` fixture runs each test on both)."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import anyio
import pytest

from actors.telegram import (
    FloodWaitError,
    LoginMigrate,
    LoginSuccess,
    LoginToken,
    PasswordInvalidError,
    PasswordNeeded,
    SessionRevokedError,
    TelegramClientPort,
    TelegramUnavailableError,
    TokenExpiredError,
    TokenInvalidError,
)

from .tg_harness import Harness, telethon_tasks

pytestmark = pytest.mark.anyio

TIMEOUT = 10


async def export_plain(client: TelegramClientPort) -> LoginToken:
    result = await client.export_token()
    assert isinstance(result, LoginToken)
    return result


async def scan_and_export(
    harness: Harness, client: TelegramClientPort, user_id: int, **kwargs: object
) -> object:
    """Export, the phone scans, the update arrives, export again: the second answer."""
    token = await export_plain(client)
    harness.scan(url=token.url, user_id=user_id, **kwargs)
    with anyio.fail_after(TIMEOUT):
        await client.wait_scanned()
    return await client.export_token()


async def test_plain_login(harness: Harness) -> None:
    """Export, scan, the update, export again: logged in on the home DC."""
    harness.add_user(100, first_name="Ann")
    async with harness.port.open_client("t1") as client:
        assert client.dc_id == harness.home_dc
        result = await scan_and_export(harness, client, 100)
        assert result == LoginSuccess(user_id=100, dc_id=harness.home_dc)
        assert await client.get_me() == 100


async def test_scan_before_wait_scanned_is_not_lost(harness: Harness) -> None:
    """A scan that lands before anyone waits is still reported by wait_scanned."""
    async with harness.port.open_client("t1") as client:
        token = await export_plain(client)
        harness.scan(url=token.url, user_id=101)
        assert await client.export_token() == LoginSuccess(101, harness.home_dc)
        with anyio.fail_after(TIMEOUT):
            await client.wait_scanned()


async def test_exports_give_fresh_tokens_expiring_after_the_ttl(harness: Harness) -> None:
    """Each export is a new token and URL, expiring about token_ttl_s ahead."""
    async with harness.port.open_client("t1") as client:
        first = await export_plain(client)
        second = await export_plain(client)
    assert first.token != second.token
    assert first.url != second.url
    assert second.url.startswith("tg://login?token=")
    assert "=" not in second.url.removeprefix("tg://login?token=")
    assert second.dc_id == harness.home_dc
    expected = harness.now() + timedelta(seconds=harness.ttl)
    for token in (first, second):
        assert token.expires_at.tzinfo is not None
        assert abs((token.expires_at - expected).total_seconds()) < 3


async def test_scan_of_an_expired_token_is_refused(harness: Harness) -> None:
    """The phone cannot accept a token after it expired; a new export gives a live one."""
    async with harness.port.open_client("t1") as client:
        token = await export_plain(client)
        harness.advance(harness.ttl + 1)
        with pytest.raises(harness.scan_error):
            harness.scan(url=token.url, user_id=102)
        fresh = await export_plain(client)
        harness.scan(url=fresh.url, user_id=102)
        with anyio.fail_after(TIMEOUT):
            await client.wait_scanned()
        assert await client.export_token() == LoginSuccess(102, harness.home_dc)


async def test_migration_to_the_users_dc(harness: Harness) -> None:
    """A user on DC 2: LoginMigrate, then import there logs in on DC 2."""
    harness.add_user(200, dc_id=2)
    async with harness.port.open_client("t1") as client:
        result = await scan_and_export(harness, client, 200)
        assert isinstance(result, LoginMigrate)
        assert result.dc_id == 2
        assert await client.import_token(result.dc_id, result.token) == LoginSuccess(200, 2)
        assert client.dc_id == 2
        assert await client.get_me() == 200


async def test_token_expired_during_migration_then_reexport(harness: Harness) -> None:
    """The migrate token expires before the import: TokenExpiredError, and a new export on
    the new DC starts over."""
    harness.add_user(201, dc_id=2)
    async with harness.port.open_client("t1") as client:
        result = await scan_and_export(harness, client, 201)
        assert isinstance(result, LoginMigrate)
        harness.advance(harness.ttl + 1)
        with pytest.raises(TokenExpiredError):
            await client.import_token(result.dc_id, result.token)
        assert client.dc_id == 2
        again = await scan_and_export(harness, client, 201)
        assert again == LoginSuccess(201, 2)


async def test_import_of_an_unknown_token_is_invalid(harness: Harness) -> None:
    async with harness.port.open_client("t1") as client:
        with pytest.raises(TokenInvalidError):
            await client.import_token(2, b"not-a-token-at-all")


async def test_two_factor_password(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """PasswordNeeded with the hint; a wrong password is rejected without echoing it; the
    right one logs in; no log line holds either password."""
    caplog.set_level(logging.DEBUG)
    harness.add_user(300, password="hunter2", hint="the usual")
    async with harness.port.open_client("t1") as client:
        assert await scan_and_export(harness, client, 300) == PasswordNeeded()
        assert await client.password_hint() == "the usual"
        with pytest.raises(PasswordInvalidError) as info:
            await client.check_password("wrong-guess")
        assert "wrong-guess" not in str(info.value)
        assert "hunter2" not in str(info.value)
        assert await client.check_password("hunter2") == LoginSuccess(300, harness.home_dc)
        assert await client.get_me() == 300
        session = client.session_string()
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in ("hunter2", "wrong-guess", session):
        assert secret not in logged


async def test_two_factor_after_migration(harness: Harness) -> None:
    """SESSION_PASSWORD_NEEDED can come from the import on the user's DC."""
    harness.add_user(301, dc_id=2, password="pw-301")
    async with harness.port.open_client("t1") as client:
        result = await scan_and_export(harness, client, 301)
        assert isinstance(result, LoginMigrate)
        assert await client.import_token(result.dc_id, result.token) == PasswordNeeded()
        assert await client.check_password("pw-301") == LoginSuccess(301, 2)


async def test_pre_authorization_session_finishes_2fa_after_reopen(harness: Harness) -> None:
    """The session saved while the password is pending lets a new client finish 2FA."""
    harness.add_user(302, password="pw-302", hint="h")
    async with harness.port.open_client("t1") as client:
        assert await scan_and_export(harness, client, 302) == PasswordNeeded()
        saved = client.session_string()
    async with harness.port.open_client("t1", session=saved) as client:
        assert await client.password_hint() == "h"
        assert await client.check_password("pw-302") == LoginSuccess(302, harness.home_dc)


@pytest.mark.parametrize("method", ["auth.exportLoginToken", "users.getUsers"])
async def test_flood_wait_surfaces_without_sleeping(harness: Harness, method: str) -> None:
    """FLOOD_WAIT reaches the caller with its seconds and method; nothing sleeps on it."""
    harness.add_user(400)
    async with harness.port.open_client("t1") as client:
        if method == "users.getUsers":
            await scan_and_export(harness, client, 400)
        harness.flood_next(method, 42)
        call = client.get_me if method == "users.getUsers" else client.export_token
        started = time.monotonic()
        with pytest.raises(FloodWaitError) as info:
            await call()
        assert time.monotonic() - started < 5
        assert (info.value.seconds, info.value.method) == (42, method)
    assert harness.sleeps == []


async def test_server_error_is_unavailable(harness: Harness) -> None:
    """A 500 from Telegram is TelegramUnavailableError; the next call works again."""
    async with harness.port.open_client("t1") as client:
        harness.fail_next("auth.exportLoginToken")
        with pytest.raises(TelegramUnavailableError):
            await client.export_token()
        await export_plain(client)


async def test_log_out(harness: Harness) -> None:
    """After log_out the session is dead, here and when restored."""
    async with harness.port.open_client("t1") as client:
        await scan_and_export(harness, client, 500)
        saved = client.session_string()
        await client.log_out()
        with pytest.raises(SessionRevokedError):
            await client.get_me()
    async with harness.port.open_client("t1", session=saved) as client:
        with pytest.raises(SessionRevokedError):
            await client.get_me()


async def test_session_string_restores_the_user_on_its_dc(harness: Harness) -> None:
    """A session saved after a migrated login reopens on DC 2 as the same user."""
    harness.add_user(600, dc_id=2)
    async with harness.port.open_client("t1") as client:
        result = await scan_and_export(harness, client, 600)
        assert isinstance(result, LoginMigrate)
        await client.import_token(result.dc_id, result.token)
        saved = client.session_string()
    assert saved
    async with harness.port.open_client("t1", session=saved) as client:
        assert client.dc_id == 2
        assert await client.get_me() == 600


async def test_revoked_session(harness: Harness) -> None:
    """revoke() kills every authorization: the open client and a restored one."""
    async with harness.port.open_client("t1") as client:
        await scan_and_export(harness, client, 700)
        saved = client.session_string()
        harness.revoke(700)
        with pytest.raises(SessionRevokedError):
            await client.get_me()
    async with harness.port.open_client("t1", session=saved) as client:
        with pytest.raises(SessionRevokedError):
            await client.get_me()


async def test_unauthorized_get_me(harness: Harness) -> None:
    async with harness.port.open_client("t1") as client:
        with pytest.raises(SessionRevokedError):
            await client.get_me()


async def test_clients_are_closed_on_every_path(harness: Harness) -> None:
    """Normal exit, an exception inside the block, and cancellation all close the client."""
    async with harness.port.open_client("t1") as client:
        await export_plain(client)

    async def crash() -> None:
        async with harness.port.open_client("t2") as client:
            await export_plain(client)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await crash()
    with anyio.CancelScope() as scope:
        async with harness.port.open_client("t3") as client:
            await export_plain(client)
            scope.cancel()
            await client.wait_scanned()  # cancelled here
    assert scope.cancelled_caught
    await harness.wait_closed()
    assert harness.open_count() == 0
    assert telethon_tasks() == []


async def test_concurrent_clients_are_independent(harness: Harness) -> None:
    """Two tenants log in side by side; each sees only its own scan."""
    harness.add_user(801)
    harness.add_user(802, dc_id=2)
    results: dict[str, object] = {}

    async def login(tenant: str, user_id: int) -> None:
        async with harness.port.open_client(tenant) as client:
            result = await scan_and_export(harness, client, user_id)
            if isinstance(result, LoginMigrate):
                result = await client.import_token(result.dc_id, result.token)
            results[tenant] = result

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(login, "a", 801)
            tg.start_soon(login, "b", 802)
    assert results == {"a": LoginSuccess(801, harness.home_dc), "b": LoginSuccess(802, 2)}
