"""Backups into a directory and restores into another real nats-server: what comes back is the
log byte for byte at the same sequences, and the buckets as they stood; a backup that fails a
check writes nothing."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import stat
from pathlib import Path

import anyio
import msgspec
import pytest
from nats.aio.client import Client

from actors.backup import (
    BackupCorruptError,
    BackupKey,
    BackupKeyError,
    DirectoryTarget,
    RestoreRefusedError,
    create_backup,
    data_name,
    list_backups,
    load_backup_key,
    manifest_name,
    open_object,
    restore_backup,
    seal_object,
    store_holds_log,
)
from actors.backup._format import decode_manifest, encode_manifest
from events import ChainKey, verify_log
from events.jetstream import JetStreamEventLog, ensure_stream
from events.jsstorage import stream_config

from ._seed import CHAIN_KEY, append, delete_session, other_store, put_session, raw_log, sessions

pytestmark = pytest.mark.anyio

KEY = BackupKey(b"k" * 32)


async def _seeded(nc: Client) -> None:
    js = nc.jetstream()
    for tenant in ("alice", "bob", "carol"):
        await append(js, tenant, 3)
    await put_session(js, "alice", b"gAAAA-sealed-alice")
    await put_session(js, "bob", b"gAAAA-sealed-bob")


async def test_full_then_incremental_restores_the_log_and_the_buckets(
    nc: Client, tmp_path: Path
) -> None:
    """The second backup holds only what came after the first; restoring the chain gives the
    same messages at the same sequences with the same headers, the sessions as they stood, and
    a log that verifies."""
    js = nc.jetstream()
    await _seeded(nc)
    target = DirectoryTarget(tmp_path / "backups")
    first = await create_backup(js, target, KEY)
    await append(js, "alice", 2)
    await append(js, "dave", 1)
    await put_session(js, "dave", b"gAAAA-sealed-dave")
    await delete_session(js, "bob")
    second = await create_backup(js, target, KEY)

    assert first.full and (first.first_seq, first.last_seq) == (1, 9)
    assert second.parent == first.id
    assert (second.first_seq, second.last_seq, second.messages) == (10, 12, 3)
    assert second.entries == 2  # dave's put and bob's deletion, not alice again
    assert [m.id for m in await list_backups(target, KEY)] == [first.id, second.id]
    assert first.chain_key_ids == {CHAIN_KEY.id: 9}

    async with other_store(tmp_path) as restored:
        result = await restore_backup(restored, target, KEY, chain_key=CHAIN_KEY)
        assert (result.backups, result.first_seq, result.last_seq) == (2, 1, 12)
        rjs = restored.jetstream()
        assert await raw_log(rjs) == await raw_log(js)
        assert await sessions(rjs) == {"alice": b"gAAAA-sealed-alice", "dave": b"gAAAA-sealed-dave"}
        report = await verify_log(JetStreamEventLog(rjs, CHAIN_KEY), CHAIN_KEY)
        assert report.ok and report.verified == 12
        # The per-subject OCC goes on where it was: the next append of alice works.
        await append(rjs, "alice", 1)


async def test_restore_at_an_earlier_backup(nc: Client, tmp_path: Path) -> None:
    """``at`` restores the chain up to that backup only."""
    js = nc.jetstream()
    await _seeded(nc)
    target = DirectoryTarget(tmp_path / "backups")
    first = await create_backup(js, target, KEY)
    await append(js, "alice", 2)
    await create_backup(js, target, KEY)
    async with other_store(tmp_path) as restored:
        result = await restore_backup(restored, target, KEY, at=first.id, chain_key=CHAIN_KEY)
        assert result.last_seq == 9
        assert len(await raw_log(restored.jetstream())) == 9


async def _nothing_written(restored: Client) -> None:
    assert not await store_holds_log(restored)
    assert await sessions(restored.jetstream()) == {}


async def test_a_corrupted_data_object_is_refused_and_nothing_is_written(
    nc: Client, tmp_path: Path
) -> None:
    """One flipped byte in the data fails the manifest's checksum: a clear error, no write."""
    await _seeded(nc)
    target = DirectoryTarget(tmp_path / "backups")
    manifest = await create_backup(nc.jetstream(), target, KEY)
    path = tmp_path / "backups" / data_name(manifest.id)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    async with other_store(tmp_path) as restored:
        with pytest.raises(BackupCorruptError, match="checksum"):
            await restore_backup(restored, target, KEY, chain_key=CHAIN_KEY)
        await _nothing_written(restored)


async def test_altered_data_with_a_matching_checksum_fails_authentication(
    nc: Client, tmp_path: Path
) -> None:
    """Whoever can write the target but lacks the key cannot make altered data pass, even
    with the checksum fixed up: the AEAD refuses it (here the manifest is resealed with the
    key, which an attacker could not do, to isolate the data's own protection)."""
    await _seeded(nc)
    target = DirectoryTarget(tmp_path / "backups")
    manifest = await create_backup(nc.jetstream(), target, KEY)
    path = tmp_path / "backups" / data_name(manifest.id)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))

    fixed = msgspec.structs.replace(manifest, data_sha256=hashlib.sha256(bytes(data)).hexdigest())
    name = manifest_name(manifest.id)
    (tmp_path / "backups" / name).write_bytes(seal_object(KEY, name, encode_manifest(fixed)))
    async with other_store(tmp_path) as restored:
        with pytest.raises(BackupCorruptError, match="fails authentication"):
            await restore_backup(restored, target, KEY, chain_key=CHAIN_KEY)
        await _nothing_written(restored)


async def test_a_wrong_backup_key_is_refused_and_nothing_is_written(
    nc: Client, tmp_path: Path
) -> None:
    """Another key opens nothing, and says it is the wrong key rather than corruption."""
    await _seeded(nc)
    target = DirectoryTarget(tmp_path / "backups")
    await create_backup(nc.jetstream(), target, KEY)
    async with other_store(tmp_path) as restored:
        with pytest.raises(BackupKeyError, match="not with this key"):
            await restore_backup(restored, target, BackupKey(b"x" * 32), chain_key=CHAIN_KEY)
        await _nothing_written(restored)


async def test_a_store_that_holds_the_log_is_refused_without_force(
    nc: Client, tmp_path: Path
) -> None:
    await _seeded(nc)
    target = DirectoryTarget(tmp_path / "backups")
    await create_backup(nc.jetstream(), target, KEY)
    async with other_store(tmp_path) as restored:
        await append(restored.jetstream(), "zed", 1)
        with pytest.raises(RestoreRefusedError, match="already holds TGQR_EVENTS"):
            await restore_backup(restored, target, KEY, chain_key=CHAIN_KEY)
        assert len(await raw_log(restored.jetstream())) == 1
        # An open server lets --force delete and replace it.
        await restore_backup(restored, target, KEY, chain_key=CHAIN_KEY, force=True)
        assert len(await raw_log(restored.jetstream())) == 9


async def test_a_broken_hash_chain_is_refused(nc: Client, tmp_path: Path) -> None:
    """A message that does not verify under the chain key (here a forged one stored by
    someone without the key) stops the restore before it writes."""
    js = nc.jetstream()
    await _seeded(nc)
    forged = b'{"type":"Scanned","tenant":"alice","attempt":1,"at":"2026-01-01T00:00:00Z"}'
    await js.publish(
        "tgqr.evt.alice", forged, headers={"Tgqr-Mac": "0" * 64, "Nats-Msg-Id": "forged"}
    )
    target = DirectoryTarget(tmp_path / "backups")
    await create_backup(js, target, KEY)
    async with other_store(tmp_path) as restored:
        with pytest.raises(BackupCorruptError, match="hash chain"):
            await restore_backup(restored, target, KEY, chain_key=CHAIN_KEY)
        await _nothing_written(restored)
        with pytest.raises(BackupCorruptError, match="chain key"):
            await restore_backup(restored, target, KEY, chain_key=ChainKey(b"w" * 32))
        await _nothing_written(restored)


async def test_an_incremental_after_the_store_was_replaced_is_full(
    nc: Client, tmp_path: Path
) -> None:
    """A store that no longer holds the log the last backup ended with starts a new chain."""
    target = DirectoryTarget(tmp_path / "backups")
    await _seeded(nc)
    await create_backup(nc.jetstream(), target, KEY)
    async with other_store(tmp_path) as other:
        await append(other.jetstream(), "zed", 10)
        manifest = await create_backup(other.jetstream(), target, KEY)
    assert manifest.full


async def test_backup_objects_are_sealed(nc: Client, tmp_path: Path) -> None:
    """Neither object shows a tenant, a session or an event in clear."""
    await _seeded(nc)
    target = DirectoryTarget(tmp_path / "backups")
    manifest = await create_backup(nc.jetstream(), target, KEY)
    for name in (data_name(manifest.id), manifest_name(manifest.id)):
        raw = (tmp_path / "backups" / name).read_bytes()
        for needle in (b"alice", b"sealed", b"LoginStarted", b"TGQR_EVENTS"):
            assert needle not in raw
        assert stat.S_IMODE((tmp_path / "backups" / name).stat().st_mode) == 0o600
    plain = open_object(KEY, manifest_name(manifest.id), raw)
    assert decode_manifest(plain) == manifest


def test_the_backup_key_file_is_made_once_private_and_never_shown(tmp_path: Path) -> None:
    with pytest.raises(BackupKeyError, match="no backup key"):
        load_backup_key(tmp_path, {})
    key = load_backup_key(tmp_path, {}, create=True)
    assert stat.S_IMODE((tmp_path / "backup.key").stat().st_mode) == 0o600
    assert load_backup_key(tmp_path, {}).id == key.id
    assert key.secret.hex() not in repr(key)
    with pytest.raises(BackupKeyError, match="64 hex"):
        load_backup_key(tmp_path, {"TGQR_BACKUP_KEY": "zz"})


async def test_a_log_that_starts_after_sequence_one_keeps_its_sequences(
    nc: Client, tmp_path: Path
) -> None:
    """A stream whose first sequence is 5 (its head was purged by an administrator) comes back
    starting at 5, and the service's own stream update at start accepts it."""
    js = nc.jetstream()
    await js.add_stream(dataclasses.replace(stream_config(), first_seq=5))
    await append(js, "alice", 3)
    target = DirectoryTarget(tmp_path / "backups")
    manifest = await create_backup(js, target, KEY)
    assert (manifest.first_seq, manifest.last_seq) == (5, 7)
    async with other_store(tmp_path) as restored:
        await restore_backup(restored, target, KEY, chain_key=CHAIN_KEY)
        rjs = restored.jetstream()
        assert await raw_log(rjs) == await raw_log(js)
        await ensure_stream(rjs)
        await append(rjs, "alice", 1)


async def test_a_gap_inside_the_log_is_refused(nc: Client, tmp_path: Path) -> None:
    """JetStream cannot recreate a deleted message's sequence: such a backup is refused with
    the missing range named, rather than restored with every later sequence shifted."""
    js = nc.jetstream()
    # A stream made without deny_delete (which, once set, can never be lifted).
    await js.add_stream(stream_config(deny_delete=False))
    await append(js, "alice", 3, ensure=False)
    await js.delete_msg("TGQR_EVENTS", 2)
    target = DirectoryTarget(tmp_path / "backups")
    await create_backup(js, target, KEY)
    async with other_store(tmp_path) as restored:
        with pytest.raises(BackupCorruptError, match=r"lacks sequences 2\.\.2"):
            await restore_backup(restored, target, KEY)
        await _nothing_written(restored)


@pytest.mark.slow
async def test_a_log_longer_than_the_publish_window_restores_whole(
    nc: Client, tmp_path: Path
) -> None:
    """More messages than a restore keeps in flight (1024): the window waits for acks and
    goes on, and every message lands at its sequence."""
    js = nc.jetstream()
    await append(js, "t0", 1)
    async with anyio.create_task_group() as tg:
        for n in range(40):
            tg.start_soon(functools.partial(append, js, f"t{n}", 30, ensure=False))
    target = DirectoryTarget(tmp_path / "backups")
    manifest = await create_backup(js, target, KEY)
    assert manifest.messages == 1201
    async with other_store(tmp_path) as restored:
        result = await restore_backup(restored, target, KEY, chain_key=CHAIN_KEY)
        assert result.last_seq == 1201
        assert await raw_log(restored.jetstream()) == await raw_log(js)
