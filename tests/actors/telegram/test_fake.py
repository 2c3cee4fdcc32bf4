"""What only the in-process fake offers: crash hooks, scans by tenant, statistics, low cost."""

from __future__ import annotations

import gc
import tracemalloc
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from actors.telegram import (
    FakeTelegram,
    LoginSuccess,
    LoginToken,
    ScanError,
    TelegramClientPort,
    TelegramPort,
    TelegramUnavailableError,
)

pytestmark = pytest.mark.anyio


async def test_it_is_a_telegram_port() -> None:
    port: TelegramPort = FakeTelegram()
    async with port.open_client("t") as client:
        assert client.dc_id == 1


async def test_fail_next_raises_any_exception_to_crash_an_actor() -> None:
    fake = FakeTelegram()
    fake.fail_next("auth.exportLoginToken", RuntimeError("boom"), times=2)
    async with fake.open_client("t") as client:
        for _ in range(2):
            with pytest.raises(RuntimeError, match="boom"):
                await client.export_token()
        assert isinstance(await client.export_token(), LoginToken)


async def test_fail_next_connect_refuses_the_client() -> None:
    fake = FakeTelegram()
    fake.fail_next("connect")
    with pytest.raises(TelegramUnavailableError):
        async with fake.open_client("t"):
            pass
    assert fake.statistics().open_clients == 0


async def test_unknown_method_names_are_refused() -> None:
    fake = FakeTelegram()
    with pytest.raises(ValueError, match="unknown method"):
        fake.flood_next("auth.exportLoginTokens", 5)


async def test_scan_by_tenant_uses_its_latest_token() -> None:
    fake = FakeTelegram()
    async with fake.open_client("acme") as client:
        await client.export_token()
        await client.export_token()
        fake.scan(tenant="acme", user_id=7)
        with anyio.fail_after(1):
            await client.wait_scanned()
        assert await client.export_token() == LoginSuccess(7, 1)
    with pytest.raises(ScanError, match="no open client"):
        fake.scan(tenant="acme", user_id=7)


async def test_a_token_is_accepted_once() -> None:
    fake = FakeTelegram()
    async with fake.open_client("t") as client:
        token = await client.export_token()
        assert isinstance(token, LoginToken)
        fake.scan(url=token.url, user_id=1)
        with pytest.raises(ScanError, match="already accepted"):
            fake.scan(url=token.url, user_id=2)
    with pytest.raises(ScanError, match="not a tg://login URL"):
        fake.scan(url="https://example.org", user_id=1)


async def test_wait_scanned_blocks_until_a_scan_and_reports_each_once() -> None:
    fake = FakeTelegram()
    async with fake.open_client("t") as client:
        token = await client.export_token()
        assert isinstance(token, LoginToken)
        done = anyio.Event()

        async def waiter() -> None:
            await client.wait_scanned()
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            assert not done.is_set()
            fake.scan(url=token.url, user_id=3)
            with anyio.fail_after(1):
                await done.wait()
        # Reported: a second wait blocks again.
        with anyio.move_on_after(0) as scope:
            await client.wait_scanned()
        assert scope.cancelled_caught


async def test_injected_clock_expires_tokens() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    fake = FakeTelegram(token_ttl_s=30, clock=lambda: now)
    async with fake.open_client("t") as client:
        token = await client.export_token()
        assert isinstance(token, LoginToken)
        assert token.expires_at == now + timedelta(seconds=30)


async def test_calls_after_close_fail() -> None:
    fake = FakeTelegram()
    async with fake.open_client("t") as client:
        pass
    with pytest.raises(TelegramUnavailableError, match="closed"):
        await client.export_token()


async def test_statistics_count_the_flow() -> None:
    fake = FakeTelegram()
    async with fake.open_client("t") as client:
        token = await client.export_token()
        assert isinstance(token, LoginToken)
        fake.scan(url=token.url, user_id=9, password="pw")
        await client.export_token()
        await client.check_password("pw")
        stats = fake.statistics()
        assert stats.open_clients == 1
    stats = fake.statistics()
    assert (stats.open_clients, stats.exports, stats.scans) == (0, 2, 1)
    assert (stats.password_checks, stats.logins, stats.users) == (1, 1, 1)


async def test_reprs_hold_no_secret() -> None:
    fake = FakeTelegram()
    fake.add_user(5, password="s3cret-pw")
    async with fake.open_client("t") as client:
        session = client.session_string()
        assert session not in repr(client)
    assert "s3cret-pw" not in repr(fake._server.users)


async def test_a_live_client_costs_little_memory() -> None:
    """1,000 open clients, each with a live token, stay well under 1 KiB apiece."""
    fake = FakeTelegram()
    count = 1000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async with AsyncExitStack() as stack:
            clients: list[TelegramClientPort] = []
            for i in range(count):
                client = await stack.enter_async_context(fake.open_client(f"tenant-{i}"))
                await client.export_token()
                clients.append(client)
            per_client = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    assert per_client < 1024, per_client
