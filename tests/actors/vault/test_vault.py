"""One contract suite for the session vault (KV on a real nats-server, and the memory fake)."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from actors.service import NatsServer
from actors.vault import (
    KvSessionVault,
    MemorySessionVault,
    SessionVault,
    VaultCorruptError,
    VaultEntry,
    VaultKeyError,
    VaultUnavailableError,
    load_key_ring,
    session_fingerprint,
)
from actors.vault._keyring import _create_key_file
from events import InvalidTenantError

pytestmark = pytest.mark.anyio

KEY_OLD = Fernet.generate_key()
KEY_NEW = Fernet.generate_key()
KEY_OTHER = Fernet.generate_key()
SESSION = "1BVtsOKABu" + "x" * 300 + "Zq9="
SESSION_2 = "1BVtsOKABu" + "y" * 300 + "Ab1="


def ring(*keys: bytes) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


@dataclass
class Backend:
    """Opens vaults with different key rings over one shared store, and reaches its raw bytes."""

    make: Callable[[MultiFernet], Awaitable[SessionVault]]
    raw: Callable[[str], Awaitable[bytes | None]]
    write_raw: Callable[[str, bytes], Awaitable[None]]


@pytest.fixture(params=["memory", "kv"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        store: dict[str, bytes] = {}

        async def make_memory(keys: MultiFernet) -> SessionVault:
            return MemorySessionVault(keys, store=store)

        async def raw_memory(tenant: str) -> bytes | None:
            return store.get(tenant)

        async def write_memory(tenant: str, value: bytes) -> None:
            store[tenant] = value

        yield Backend(make_memory, raw_memory, write_memory)
        return
    server: NatsServer = request.getfixturevalue("nats_server")
    nc = await nats.connect(server.url, max_reconnect_attempts=0)
    js = nc.jetstream()

    async def make_kv(keys: MultiFernet) -> SessionVault:
        return await KvSessionVault.open(js, keys)

    async def raw_kv(tenant: str) -> bytes | None:
        kv = await js.key_value("tgqr_sessions")
        try:
            return (await kv.get(tenant)).value
        except nats.js.errors.KeyNotFoundError:
            return None

    async def write_kv(tenant: str, value: bytes) -> None:
        kv = await js.key_value("tgqr_sessions")
        await kv.put(tenant, value)

    yield Backend(make_kv, raw_kv, write_kv)
    await nc.drain()


async def test_round_trip_keeps_session_and_stage(backend: Backend) -> None:
    """A stored session comes back unchanged with its stage; a later put replaces it."""
    vault = await backend.make(ring(KEY_NEW))
    await vault.put("alice", SESSION, stage="pre_auth")
    assert await vault.get("alice") == VaultEntry(session=SESSION, stage="pre_auth")
    await vault.put("alice", SESSION_2, stage="authorized")
    assert await vault.get("alice") == VaultEntry(session=SESSION_2, stage="authorized")


async def test_get_of_unknown_tenant_is_none(backend: Backend) -> None:
    """A tenant without a stored session reads as None."""
    vault = await backend.make(ring(KEY_NEW))
    assert await vault.get("nobody") is None


async def test_delete_is_idempotent(backend: Backend) -> None:
    """Deleting forgets the session; deleting again (or a missing tenant) is not an error."""
    vault = await backend.make(ring(KEY_NEW))
    await vault.delete("ghost")
    await vault.put("bob", SESSION, stage="authorized")
    await vault.delete("bob")
    await vault.delete("bob")
    assert await vault.get("bob") is None
    assert await vault.tenants() == []
    assert await backend.raw("bob") in (None, b"")


async def test_tenants_lists_stored_ones_sorted(backend: Backend) -> None:
    """``tenants`` lists every tenant with a session, sorted, and forgets deleted ones."""
    vault = await backend.make(ring(KEY_NEW))
    assert await vault.tenants() == []
    for tenant in ("carol", "alice", "bob"):
        await vault.put(tenant, SESSION, stage="authorized")
    await vault.delete("bob")
    assert await vault.tenants() == ["alice", "carol"]


async def test_rotation_retires_the_old_key(backend: Backend) -> None:
    """After ``rotate`` with [new, old], a ring of only the new key reads every entry."""
    old = await backend.make(ring(KEY_OLD))
    await old.put("alice", SESSION, stage="authorized")
    await old.put("bob", SESSION_2, stage="pre_auth")

    rotating = await backend.make(ring(KEY_NEW, KEY_OLD))
    assert await rotating.rotate() == 2

    new_only = await backend.make(ring(KEY_NEW))
    assert await new_only.get("alice") == VaultEntry(session=SESSION, stage="authorized")
    assert await new_only.get("bob") == VaultEntry(session=SESSION_2, stage="pre_auth")
    with pytest.raises(VaultKeyError):
        await (await backend.make(ring(KEY_OLD))).get("alice")


async def test_rotate_reports_its_progress(backend: Backend) -> None:
    """``on_progress(done, total)`` follows each entry, sessions and proxies alike, to the end."""
    old = await backend.make(ring(KEY_OLD))
    await old.put("alice", SESSION, stage="authorized")
    await old.put("bob", SESSION_2, stage="pre_auth")
    await old.put_proxy("bob", "socks5://u:p@proxy.example:1080")
    seen: list[tuple[int, int]] = []
    rotating = await backend.make(ring(KEY_NEW, KEY_OLD))
    assert await rotating.rotate(on_progress=lambda done, total: seen.append((done, total))) == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_rotate_of_empty_vault_is_zero(backend: Backend) -> None:
    """Rotating an empty vault re-encrypts nothing."""
    assert await (await backend.make(ring(KEY_NEW))).rotate() == 0


async def test_wrong_key_gives_a_clear_error_without_secrets(backend: Backend) -> None:
    """Reading with a ring that lacks the key names the tenant, never the key or the session."""
    await (await backend.make(ring(KEY_OLD))).put("alice", SESSION, stage="authorized")
    wrong = await backend.make(ring(KEY_OTHER))
    with pytest.raises(VaultKeyError) as caught:
        await wrong.get("alice")
    message = str(caught.value)
    assert message == "cannot decrypt the session of tenant 'alice' with the configured keys"
    for secret in (KEY_OLD, KEY_OTHER):
        assert secret.decode() not in repr(caught.value)
    assert SESSION not in repr(caught.value)
    assert caught.value.__cause__ is None


async def test_rotate_with_a_wrong_key_refuses(backend: Backend) -> None:
    """``rotate`` raises VaultKeyError when no configured key decrypts an entry."""
    await (await backend.make(ring(KEY_OLD))).put("alice", SESSION, stage="authorized")
    with pytest.raises(VaultKeyError):
        await (await backend.make(ring(KEY_OTHER))).rotate()


async def test_stored_value_is_unreadable_without_the_key(backend: Backend) -> None:
    """The raw stored bytes hold no session text and only the right key decrypts them."""
    vault = await backend.make(ring(KEY_NEW))
    await vault.put("alice", SESSION, stage="authorized")
    raw = await backend.raw("alice")
    assert raw is not None
    assert SESSION.encode() not in raw
    assert b"x" * 40 not in raw
    with pytest.raises(InvalidToken):
        Fernet(KEY_OTHER).decrypt(raw)
    assert SESSION.encode() in Fernet(KEY_NEW).decrypt(raw)


async def test_value_moved_to_another_tenant_is_rejected(backend: Backend) -> None:
    """A token copied under another tenant's key is refused, not handed out."""
    vault = await backend.make(ring(KEY_NEW))
    await vault.put("alice", SESSION, stage="authorized")
    raw = await backend.raw("alice")
    assert raw is not None
    await backend.write_raw("mallory", raw)
    with pytest.raises(VaultCorruptError):
        await vault.get("mallory")


async def test_invalid_tenant_is_rejected(backend: Backend) -> None:
    """Tenant ids outside ``^[A-Za-z0-9_-]{1,64}$`` never reach the store."""
    vault = await backend.make(ring(KEY_NEW))
    with pytest.raises(InvalidTenantError):
        await vault.put("a.b", SESSION, stage="authorized")
    with pytest.raises(InvalidTenantError):
        await vault.get("*")


async def test_kv_open_is_idempotent(nats_server: NatsServer) -> None:
    """Opening the bucket twice reuses it and keeps what was stored."""
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        first = await KvSessionVault.open(js, ring(KEY_NEW))
        await first.put("alice", SESSION, stage="authorized")
        second = await KvSessionVault.open(js, ring(KEY_NEW))
        assert await second.tenants() == ["alice"]
        assert "tgqr_sessions" in repr(second)
    finally:
        await nc.drain()


def test_entry_repr_hides_the_session() -> None:
    """Neither repr nor str of an entry shows the session."""
    entry = VaultEntry(session=SESSION, stage="authorized")
    assert SESSION not in repr(entry)
    assert SESSION not in str(entry)
    assert "authorized" in repr(entry)


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    """Without TGQR_VAULT_KEYS a key file is created with mode 0600, then reused as is."""
    data = tmp_path / "data"
    first = load_key_ring(data, env={})
    path = data / "vault.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    second = load_key_ring(data, env={})
    assert path.read_bytes() == content
    assert second.decrypt(first.encrypt(b"hello")) == b"hello"
    assert [p.name for p in data.iterdir()] == ["vault.key"]


def test_key_file_may_hold_a_ring_newest_first(tmp_path: Path) -> None:
    """A key file with several lines is a ring: the first line encrypts, all decrypt."""
    (tmp_path / "vault.key").write_bytes(KEY_NEW + b"\n# retired soon\n" + KEY_OLD + b"\n")
    keys = load_key_ring(tmp_path, env={})
    assert Fernet(KEY_NEW).decrypt(keys.encrypt(b"x")) == b"x"
    assert keys.decrypt(Fernet(KEY_OLD).encrypt(b"y")) == b"y"


def test_env_keys_win_newest_first(tmp_path: Path) -> None:
    """TGQR_VAULT_KEYS overrides the key file; its first key encrypts, the others decrypt."""
    env = {"TGQR_VAULT_KEYS": f" {KEY_NEW.decode()} , {KEY_OLD.decode()} "}
    keys = load_key_ring(tmp_path, env=env)
    assert not (tmp_path / "vault.key").exists()
    assert Fernet(KEY_NEW).decrypt(keys.encrypt(b"x")) == b"x"
    assert keys.decrypt(Fernet(KEY_OLD).encrypt(b"y")) == b"y"


def test_invalid_env_key_is_named_by_position_only(tmp_path: Path) -> None:
    """A malformed key is reported by its position; its text is not in the message."""
    bogus = "not-a-fernet-key-but-secret-looking"
    with pytest.raises(VaultKeyError) as caught:
        load_key_ring(tmp_path, env={"TGQR_VAULT_KEYS": f"{KEY_NEW.decode()},{bogus}"})
    assert "key 2" in str(caught.value)
    assert bogus not in str(caught.value)
    assert KEY_NEW.decode() not in str(caught.value)
    assert caught.value.__cause__ is None


def test_empty_key_file_is_an_error(tmp_path: Path) -> None:
    """A key file without any key is refused rather than silently replaced."""
    (tmp_path / "vault.key").write_text("\n")
    with pytest.raises(VaultKeyError, match="holds no key"):
        load_key_ring(tmp_path, env={})


def test_fingerprint_is_short_stable_and_not_the_session() -> None:
    """The fingerprint is 16 hex chars, the same for the same session, different otherwise."""
    fp = session_fingerprint(SESSION)
    assert fp == session_fingerprint(SESSION)
    assert fp != session_fingerprint(SESSION_2)
    assert len(fp) == 16
    assert int(fp, 16) >= 0
    assert fp not in SESSION


def test_key_file_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A key file with group/other permissions still loads, with one warning naming the path."""
    path = tmp_path / "vault.key"
    path.write_bytes(KEY_NEW + b"\n")
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="actors.vault"):
        load_key_ring(tmp_path, env={})
    [record] = caplog.records
    assert str(path) in record.getMessage()
    assert KEY_NEW.decode() not in record.getMessage()


def test_losing_the_creation_race_keeps_the_winners_key(tmp_path: Path) -> None:
    """If another process created the key file first, its key stays and no temp file remains."""
    path = tmp_path / "vault.key"
    path.write_bytes(KEY_NEW + b"\n")
    _create_key_file(path)
    assert path.read_bytes() == KEY_NEW + b"\n"
    assert [p.name for p in tmp_path.iterdir()] == ["vault.key"]


async def test_closed_connection_is_unavailable(nats_server: NatsServer) -> None:
    """A dead connection surfaces as VaultUnavailableError, not a nats exception."""
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    vault = await KvSessionVault.open(nc.jetstream(), ring(KEY_NEW))
    await nc.close()
    with pytest.raises(VaultUnavailableError):
        await vault.get("alice")
    with pytest.raises(VaultUnavailableError):
        await vault.put("alice", SESSION, stage="authorized")


PROXY = "socks5://alice:pr0xy-s3cret@10.0.0.7:1080"


async def test_a_tenants_proxy_is_kept_sealed_beside_its_session(backend: Backend) -> None:
    """The proxy URL round-trips, is stored encrypted (no credential in the raw bytes), is not
    a tenant of its own, survives a session's deletion, rotates with the rest and can be
    forgotten (twice: idempotent)."""
    vault = await backend.make(ring(KEY_OLD))
    assert await vault.get_proxy("acme") is None
    await vault.put_proxy("acme", PROXY)
    await vault.put("acme", SESSION, stage="authorized")
    assert await vault.get_proxy("acme") == PROXY
    raw = await backend.raw("acme.proxy")
    assert raw is not None
    assert b"pr0xy-s3cret" not in raw
    assert await vault.tenants() == ["acme"]
    await vault.delete("acme")
    assert await vault.get_proxy("acme") == PROXY
    rotated = await backend.make(ring(KEY_NEW, KEY_OLD))
    assert await rotated.rotate() == 1
    assert await (await backend.make(ring(KEY_NEW))).get_proxy("acme") == PROXY
    await rotated.delete_proxy("acme")
    await rotated.delete_proxy("acme")
    assert await rotated.get_proxy("acme") is None


async def test_a_session_document_is_not_taken_for_a_proxy(backend: Backend) -> None:
    """A sealed session moved under the proxy's key is refused (it is no proxy)."""
    vault = await backend.make(ring(KEY_OLD))
    await vault.put("acme", SESSION, stage="authorized")
    raw = await backend.raw("acme")
    assert raw is not None
    await backend.write_raw("acme.proxy", raw)
    with pytest.raises(VaultCorruptError, match="not a proxy"):
        await vault.get_proxy("acme")
