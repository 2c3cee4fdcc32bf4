"""No secret in any repr: every object that holds a password, a session, a key or an API hash
shows neither in ``repr()`` nor ``str()`` (log lines, tracebacks and debuggers print those)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from actors.gateway._parse import _PasswordBody
from actors.login import Password
from actors.service import ServiceConfig
from actors.sim._control import _ScanBody
from actors.sim._handshake import test_rsa_key as simulator_rsa_key
from actors.sim._mtproto import KeyRecord
from actors.sim._srp import Challenge, Verifier
from actors.sim._state import User as SimUser
from actors.telegram._fake_client import KeyState
from actors.telegram._fake_server import User as FakeUser
from actors.telegram._telethon_client import ClientSettings
from actors.vault import VaultEntry
from actors.vault._keyring import _Doc
from events import ChainKey

SECRET = "hunter2-s3cret-value"
SECRET_BYTES = SECRET.encode()
BIG = int.from_bytes(SECRET_BYTES, "big")


async def _no_sleep(_: float) -> None:
    return None


def _key_state() -> KeyState:
    state = KeyState(dc_id=2)
    state.key = SECRET
    return state


HOLDERS: dict[str, Callable[[], object]] = {
    "ServiceConfig.api_hash": lambda: ServiceConfig(
        data_dir=Path("var"), api_id=12345, api_hash=SECRET
    ),
    "ServiceConfig.nats_urls": lambda: ServiceConfig.from_env(
        {}, nats=f"nats://app:{SECRET}@127.0.0.1:4222"
    ),
    "ServiceConfig.from_env": lambda: ServiceConfig.from_env(
        {"TGQR_API_ID": "12345", "TGQR_API_HASH": SECRET}
    ),
    "_PasswordBody": lambda: msgspec.json.decode(
        msgspec.json.encode({"password": SECRET}), type=_PasswordBody
    ),
    "_ScanBody": lambda: _ScanBody(
        user_id=7, tenant="alice", url=f"tg://login?token={SECRET}", password=SECRET
    ),
    "Password": lambda: Password(password=SECRET),
    "VaultEntry": lambda: VaultEntry(session=SECRET, stage="authorized"),
    "vault _Doc": lambda: _Doc(tenant="alice", stage="authorized", session=SECRET),
    "ClientSettings": lambda: ClientSettings(
        api_id=1,
        api_hash=SECRET,
        throttle=(0.0, 0.0),
        rng=random.Random(0),
        sleep=_no_sleep,
        timeout=1.0,
    ),
    "fake Telegram User": lambda: FakeUser(1, 2, SECRET, "hint", "Ann"),
    "fake Telegram KeyState": _key_state,
    "simulator Verifier": lambda: Verifier(salt1=b"s1", salt2=b"s2", v=BIG),
    "simulator Challenge": lambda: Challenge(srp_id=1, b=BIG, srp_b=SECRET_BYTES),
    "simulator User": lambda: SimUser(
        user_id=1,
        dc_id=2,
        first_name="Ann",
        access_hash=3,
        verifier=Verifier(salt1=b"s1", salt2=b"s2", v=BIG),
    ),
    "simulator KeyRecord": lambda: KeyRecord(auth_key=SECRET_BYTES, key_id=1, salt=2),
    "ChainKey": lambda: ChainKey(SECRET_BYTES),
}


def _forms() -> tuple[str, ...]:
    return (SECRET, repr(SECRET), SECRET_BYTES.hex(), repr(SECRET_BYTES), str(BIG))


@pytest.mark.parametrize("name", sorted(HOLDERS))
def test_no_secret_in_repr_or_str(name: str) -> None:
    """``repr`` and ``str`` name the type and the harmless fields, never the secret."""
    holder = HOLDERS[name]()
    for shown in (repr(holder), str(holder), f"{holder!r:}", f"{holder}"):
        assert type(holder).__name__ in shown
        for form in _forms():
            assert form not in shown, (name, shown)


def test_the_simulators_rsa_key_hides_its_private_half() -> None:
    """The simulator's RSA key shows its public numbers, not the private ones."""
    key = simulator_rsa_key()
    numbers = key._private
    shown = repr(key)
    assert str(key.n) in shown
    for secret in (numbers.d, numbers.p, numbers.q):
        assert str(secret) not in shown


def test_service_config_repr_still_says_what_runs() -> None:
    """Hiding the hash keeps the rest readable: the api id and the data dir show."""
    shown = repr(ServiceConfig(data_dir=Path("var/x"), api_id=12345, api_hash=SECRET))
    assert "api_id=12345" in shown
    assert "var/x" in shown
    assert "api_hash" not in shown
