"""`tgqr backup` as an operator runs it: listings, and failures as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nats.aio.client import Client

from actors.backup import BackupKey, DirectoryTarget, create_backup
from tests.actors.cli._children import one_line, tgqr

from ._seed import append

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_list_shows_the_chain_and_a_wrong_key_is_one_line(nc: Client, tmp_path: Path) -> None:
    key = BackupKey(b"k" * 32)
    await append(nc.jetstream(), "alice", 2)
    target = DirectoryTarget(tmp_path / "backups")
    first = await create_backup(nc.jetstream(), target, key)
    await append(nc.jetstream(), "alice", 1)
    second = await create_backup(nc.jetstream(), target, key)
    data = str(tmp_path / "data")

    listed = tgqr("backup", "list", str(tmp_path / "backups"), "--json", "--data", data,
                  TGQR_BACKUP_KEY=key.secret.hex())  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    chain = json.loads(listed.stdout)
    assert [(m["id"], m["parent"]) for m in chain] == [(first.id, None), (second.id, first.id)]

    wrong = tgqr("backup", "list", str(tmp_path / "backups"), "--data", data,
                 TGQR_BACKUP_KEY="ab" * 32)  # fmt: skip
    line = one_line(wrong)
    assert "not with this key" in line
    assert key.secret.hex() not in wrong.stderr and "ab" * 32 not in wrong.stderr
    missing = one_line(tgqr("backup", "list", str(tmp_path / "backups"), "--data", data))
    assert "no backup key" in missing


def test_create_without_a_running_service_backs_the_stopped_store_up(tmp_path: Path) -> None:
    """With no `tgqr up` on the data directory, create starts the embedded server itself; an
    empty store has no log to back up, which is one line; the backup key is made (0600)."""
    data = tmp_path / "data"
    result = tgqr("backup", "create", "--to", str(tmp_path / "b"), "--data", str(data))
    assert "there is no stream TGQR_EVENTS to back up" in one_line(result)
    assert (data / "backup.key").stat().st_mode & 0o777 == 0o600
    assert not (data / "nats.url").exists()
