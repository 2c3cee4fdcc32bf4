"""Backups in S3: a real SeaweedFS on loopback started by the test."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.aio.client import Client

from actors.backup import (
    BackupCorruptError,
    BackupKey,
    BackupKeyError,
    BackupTargetError,
    create_backup,
    data_name,
    list_backups,
    open_target,
    restore_backup,
    store_holds_log,
)

from ._seaweed import S3Server
from ._seed import CHAIN_KEY, append, other_store, put_session, raw_log, sessions

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

KEY = BackupKey(b"k" * 32)


async def test_backup_to_s3_and_restore(s3: S3Server, nc: Client, tmp_path: Path) -> None:
    """Full then incremental under a prefix; the restore gives the log and sessions back."""
    js = nc.jetstream()
    await append(js, "alice", 3)
    await put_session(js, "alice", b"gAAAA-sealed")
    target = open_target("s3://tgqr-backups/prod/eu", env=s3.env())
    first = await create_backup(js, target, KEY)
    await append(js, "bob", 2)
    second = await create_backup(js, target, KEY)
    assert sorted(await target.names()) == sorted(
        f"{i}.{kind}" for i in (first.id, second.id) for kind in ("data", "manifest")
    )
    assert [m.id for m in await list_backups(target, KEY)] == [first.id, second.id]
    async with other_store(tmp_path) as restored:
        result = await restore_backup(restored, target, KEY, chain_key=CHAIN_KEY)
        assert result.last_seq == 5
        assert await raw_log(restored.jetstream()) == await raw_log(js)
        assert await sessions(restored.jetstream()) == {"alice": b"gAAAA-sealed"}


async def test_s3_corrupted_and_wrong_key_are_refused(
    s3: S3Server, nc: Client, tmp_path: Path
) -> None:
    js = nc.jetstream()
    await append(js, "alice", 2)
    target = open_target("s3://tgqr-backups/corrupt", env=s3.env())
    manifest = await create_backup(js, target, KEY)
    async with other_store(tmp_path) as restored:
        with pytest.raises(BackupKeyError):
            await restore_backup(restored, target, BackupKey(b"w" * 32))
        data = bytearray(await target.get(data_name(manifest.id)))
        data[100] ^= 0xFF
        await target.put(data_name(manifest.id), bytes(data))
        with pytest.raises(BackupCorruptError, match="checksum"):
            await restore_backup(restored, target, KEY)
        assert not await store_holds_log(restored)


async def test_s3_wrong_credentials_say_so(s3: S3Server) -> None:
    env = {**s3.env(), "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    target = open_target("s3://tgqr-backups/x", env=env)
    with pytest.raises(BackupTargetError, match="S3 listing") as caught:
        await target.names()
    assert "wrong-secret" not in str(caught.value)
