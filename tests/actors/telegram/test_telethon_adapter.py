"""What only the Telethon adapter does: error translation, throttling, connection failures."""

from __future__ import annotations

import random
import socket

import anyio
import pytest
from telethon import errors, functions, types

from actors.telegram import (
    SIMULATOR_API_HASH,
    SIMULATOR_API_ID,
    FloodWaitError,
    LoginSuccess,
    LoginToken,
    PasswordInvalidError,
    SessionRevokedError,
    TelegramConfigError,
    TelegramError,
    TelegramUnavailableError,
    TelethonTelegram,
    TokenExpiredError,
    TokenInvalidError,
)
from actors.telegram._telethon_errors import PasswordRequiredError, method_name, translate

from .tg_harness import SimHarness, telethon_tasks

pytestmark = pytest.mark.anyio

_EXPORT = functions.auth.ExportLoginTokenRequest(1, "hash", [])


def rpc_error(code: int, message: str) -> BaseException:
    exc: BaseException = errors.rpc_message_to_error(types.RpcError(code, message), _EXPORT)
    return exc


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (420, "FLOOD_WAIT_42", FloodWaitError),
        (420, "FLOOD_PREMIUM_WAIT_7", FloodWaitError),
        (401, "SESSION_PASSWORD_NEEDED", PasswordRequiredError),
        (400, "AUTH_TOKEN_EXPIRED", TokenExpiredError),
        (400, "AUTH_TOKEN_INVALID", TokenInvalidError),
        (400, "AUTH_TOKEN_INVALIDX", TokenInvalidError),
        (400, "AUTH_TOKEN_ALREADY_ACCEPTED", TokenInvalidError),
        (400, "PASSWORD_HASH_INVALID", PasswordInvalidError),
        (400, "API_ID_INVALID", TelegramConfigError),
        (400, "API_ID_PUBLISHED_FLOOD", TelegramConfigError),
        (401, "AUTH_KEY_UNREGISTERED", SessionRevokedError),
        (401, "SESSION_REVOKED", SessionRevokedError),
        (406, "AUTH_KEY_DUPLICATED", SessionRevokedError),
        (500, "INTERNAL", TelegramUnavailableError),
        (500, "RPC_CALL_FAIL", TelegramUnavailableError),
        (-503, "Timedout", TelegramUnavailableError),
        (400, "SOMETHING_NEW", TelegramError),
    ],
)
def test_telethon_errors_map_to_ours(code: int, message: str, expected: type) -> None:
    mapped = translate(rpc_error(code, message), "auth.exportLoginToken")
    assert type(mapped) is expected


def test_flood_wait_keeps_seconds_and_method() -> None:
    mapped = translate(rpc_error(420, "FLOOD_WAIT_42"), "auth.importLoginToken")
    assert isinstance(mapped, FloodWaitError)
    assert (mapped.seconds, mapped.method) == (42, "auth.importLoginToken")


@pytest.mark.parametrize("exc", [ConnectionError("reset"), OSError("down"), TimeoutError()])
def test_transport_failures_are_unavailable(exc: BaseException) -> None:
    assert isinstance(translate(exc, "connect"), TelegramUnavailableError)


def test_bugs_are_not_translated() -> None:
    assert translate(KeyError("x"), "connect") is None


def test_method_names_are_tl_names() -> None:
    assert method_name(_EXPORT) == "auth.exportLoginToken"
    assert method_name(functions.account.GetPasswordRequest()) == "account.getPassword"
    assert method_name(functions.users.GetUsersRequest([])) == "users.getUsers"


def test_repr_holds_no_api_hash() -> None:
    port = TelethonTelegram(api_id=12345, api_hash="0123456789abcdef-secret")
    assert "secret" not in repr(port)


def test_throttle_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="throttle_s"):
        TelethonTelegram(api_id=1, api_hash="h", throttle_s=(0.5, 0.2))


async def test_malformed_session_is_a_config_error() -> None:
    port = TelethonTelegram(api_id=1, api_hash="h", dc=(1, "127.0.0.1", 9))
    with pytest.raises(TelegramConfigError, match="malformed") as info:
        async with port.open_client("t", session="1not-base64!!"):
            pass
    assert "not-base64" not in str(info.value)


async def test_unreachable_dc_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port_number = sock.getsockname()[1]
    port = TelethonTelegram(
        api_id=1, api_hash="h", dc=(1, "127.0.0.1", port_number), request_timeout=5
    )
    with anyio.fail_after(10), pytest.raises(TelegramUnavailableError):
        async with port.open_client("t"):
            pass
    assert telethon_tasks() == []


async def test_for_simulator_logs_in(running_sim: SimHarness) -> None:
    port = TelethonTelegram.for_simulator(running_sim.sim)
    async with port.open_client("t") as client:
        token = await client.export_token()
        assert isinstance(token, LoginToken)
        running_sim.scan(url=token.url, user_id=11)
        with anyio.fail_after(10):
            await client.wait_scanned()
        assert await client.export_token() == LoginSuccess(11, running_sim.home_dc)


async def test_throttle_pauses_between_a_clients_requests(running_sim: SimHarness) -> None:
    """A random pause in [low, high] before every request but a client's first."""
    sim = running_sim.sim
    host, port_number = sim.dc_address(sim.home_dc)
    port = TelethonTelegram(
        api_id=SIMULATOR_API_ID,
        api_hash=SIMULATOR_API_HASH,
        dc=(sim.home_dc, host, port_number),
        throttle_s=(0.2, 0.5),
        rng=random.Random(7),
        sleep=running_sim.record_sleep,
    )
    async with port.open_client("t") as client:
        for _ in range(3):
            await client.export_token()
        with pytest.raises(SessionRevokedError):
            await client.get_me()
    assert len(running_sim.sleeps) == 3
    assert all(0.2 <= s <= 0.5 for s in running_sim.sleeps)
    assert len(set(running_sim.sleeps)) == 3
