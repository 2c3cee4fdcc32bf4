"""The targets: the JetStream object store as role ``service`` of the shipped ``nats.conf``
(whose permissions name the bucket ``tgqr_backups``), and the automatic loop's failures and
retention."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.aio.client import Client

from actors.backup import (
    BackupKey,
    BackupNotFoundError,
    BackupStats,
    DirectoryTarget,
    backup_once,
    create_backup,
    depends_on,
    list_backups,
    open_target,
    restore_backup,
    run_backups,
)
from actors.backup._format import Manifest
from actors.service import ConfigError, ServiceConfig
from tests.conftest import AuthServer

from ._seed import CHAIN_KEY, append, other_store, put_session, raw_log, sessions

pytestmark = pytest.mark.anyio

KEY = BackupKey(b"k" * 32)


async def test_the_object_store_as_role_service(
    auth_nats_server: AuthServer, tmp_path: Path
) -> None:
    """Role service may create nats-object://tgqr_backups, write, list, read and mark deleted;
    a restore from it gives the log back."""
    nc = await auth_nats_server.connect("service")
    try:
        js = nc.jetstream(timeout=10)
        await append(js, "alice", 3)
        await put_session(js, "alice", b"gAAAA-sealed")
        target = open_target("nats-object://tgqr_backups", js=js)
        assert await target.names() == []
        first = await create_backup(js, target, KEY)
        await append(js, "alice", 1)
        second = await create_backup(js, target, KEY)
        assert [m.id for m in await list_backups(target, KEY)] == [first.id, second.id]
        async with other_store(tmp_path) as restored:
            await restore_backup(restored, target, KEY, chain_key=CHAIN_KEY)
            assert await raw_log(restored.jetstream()) == await raw_log(js)
            assert await sessions(restored.jetstream()) == {"alice": b"gAAAA-sealed"}
        await target.delete(f"{second.id}.manifest")
        assert [m.id for m in await list_backups(target, KEY)] == [first.id]
        with pytest.raises(BackupNotFoundError):
            await target.get(f"{second.id}.manifest")
    finally:
        await nc.close()


async def test_a_failed_backup_is_counted_never_raised(nc: Client, tmp_path: Path) -> None:
    """A target that cannot be written (a file where the directory should be) costs a count
    and a log line; the next one, once it can, succeeds."""
    await append(nc.jetstream(), "alice", 1)
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    stats = BackupStats()
    assert (
        await backup_once(nc.jetstream(), DirectoryTarget(blocked), KEY, keep=3, stats=stats)
        is None
    )
    assert (stats.ok, stats.failed, stats.last_error) == (0, 1, "BackupTargetError")
    good = DirectoryTarget(tmp_path / "good")
    assert await backup_once(nc.jetstream(), good, KEY, keep=3, stats=stats) is not None
    assert (stats.ok, stats.failed) == (1, 1)


async def test_the_loop_backs_up_at_each_interval_and_keeps_the_newest(
    nc: Client, tmp_path: Path
) -> None:
    """With keep=2, a new full backup starts every 2 backups and older chains go."""
    js = nc.jetstream()
    target = DirectoryTarget(tmp_path / "auto")
    rounds = 0

    async def sleep(_: float) -> None:
        nonlocal rounds
        rounds += 1
        await append(js, "alice", 1)
        if rounds == 5:
            raise _StopError

    await append(js, "alice", 1)
    with pytest.raises(_StopError):
        await run_backups(js, target, KEY, every_s=60, keep=2, sleep=sleep)
    manifests = await list_backups(target, KEY)
    # 5 backups: F1 I F2 I F3 -> the newest two (I, F3) keep F2 too.
    assert [m.full for m in manifests] == [True, False, True]
    assert manifests[-1].last_seq == 5


class _StopError(Exception):
    pass


def _m(backup_id: str, parent: str | None) -> Manifest:
    return Manifest(
        id=backup_id, parent=parent, created_at="", tgqr_version="", stream="S", first_seq=1,
        last_seq=1, last_mac="", messages=0, buckets={}, entries=0, chain_key_ids={},
        data_sha256="", data_bytes=0,
    )  # fmt: skip


def test_retention_keeps_what_the_newest_depend_on() -> None:
    chain = [_m("a", None), _m("b", "a"), _m("c", "b"), _m("d", None), _m("e", "d")]
    assert depends_on(chain, 1) == {"d", "e"}
    assert depends_on(chain, 3) == {"a", "b", "c", "d", "e"}
    assert depends_on(chain, 0) == set()


def test_automatic_backups_are_off_unless_an_interval_is_set() -> None:
    assert not ServiceConfig.from_env({}).backups.enabled
    assert not ServiceConfig.from_env({"TGQR_BACKUP_TO": "/b"}).backups.enabled
    on = ServiceConfig.from_env({"TGQR_BACKUP_TO": "/b", "TGQR_BACKUP_EVERY_S": "3600"}).backups
    assert (on.enabled, on.to, on.every_s, on.keep) == (True, "/b", 3600, 7)
    for env, words in (
        ({"TGQR_BACKUP_EVERY_S": "3600"}, "needs TGQR_BACKUP_TO"),
        ({"TGQR_BACKUP_TO": "/b", "TGQR_BACKUP_EVERY_S": "5"}, "at least 60"),
        ({"TGQR_BACKUP_KEEP": "0"}, "TGQR_BACKUP_KEEP"),
        ({"TGQR_BACKUP_KEEP": "x"}, "integer"),
        ({"TGQR_BACKUP_TO": "ftp://host/x"}, "s3://BUCKET/PREFIX"),
        ({"TGQR_BACKUP_TO": "s3://"}, "s3://BUCKET/PREFIX"),
    ):
        with pytest.raises(ConfigError, match=words):
            ServiceConfig.from_env(env)
