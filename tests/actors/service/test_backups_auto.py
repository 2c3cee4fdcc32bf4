"""Automatic backups from the service: taken by the holder of partition 0, each recorded on
the ``_backups`` chain (``BackupTaken``), and the log's other readers unaffected."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import anyio
import nats
import pytest
from nats.aio.msg import Msg

from actors.backup import DirectoryTarget, list_backups, load_backup_key
from actors.service import NatsServer, RunningService, ServiceConfig, run_service

pytestmark = pytest.mark.anyio


async def test_the_leader_backs_up_at_once_and_records_it(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    target = tmp_path / "backups"
    env = {"TGQR_BACKUP_TO": str(target), "TGQR_BACKUP_EVERY_S": "3600"}
    config = replace(
        ServiceConfig.from_env(env, data_dir=tmp_path / "data", nats=nats_server.url),
        throttle_s=(0.0, 0.0),
        http=None,
        metrics=None,
    )
    nc = await nats.connect(nats_server.url)
    taken = anyio.Event()
    recorded: list[dict[str, object]] = []

    async def on_event(msg: Msg) -> None:
        if msg.data:
            recorded.append(json.loads(msg.data))
            taken.set()

    await nc.subscribe("tgqr.evt._backups", cb=on_event)
    async with anyio.create_task_group() as tg:
        running: RunningService = await tg.start(
            lambda task_status: run_service(config, task_status=task_status)
        )
        assert running.ownership is not None
        assert running.ownership.holds_partition(0)
        with anyio.fail_after(20):
            await taken.wait()
        tg.cancel_scope.cancel()
    await nc.close()
    assert recorded[0]["type"] == "BackupTaken"
    assert recorded[0]["full"] is True
    key = load_backup_key(tmp_path / "data", create=False)
    backups = await list_backups(DirectoryTarget(target), key)
    assert [b.id for b in backups] == [recorded[0]["backup_id"]]
