"""Automatic backups, taken by one instance: the holder of partition 0 (README, "Backups").

When that partition moves (a hand-over, a dead instance), the loop stops where it is and the
new holder starts its own, beginning with a backup at once (incremental on the last one). Each
backup's outcome is a metric, a log line (:mod:`actors.backup`) and an event on the service's
chain ``_backups``: ``BackupTaken`` or ``BackupFailed``. Nothing here raises but cancellation
and the log being unreachable (the part is then restarted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Final

import anyio
from anyio.abc import TaskStatus
from nats.aio.client import Client

from actors.backup import BackupStats, Manifest, backup_once, load_backup_key, open_target
from actors.ownership import Ownership
from actors.telemetry import Telemetry
from events import BACKUPS_CHAIN, BackupFailed, BackupTaken, ConcurrencyConflictError, EventLog

from ._config import ServiceConfig

__all__ = ["LEADER_PARTITION", "back_up_as_leader"]

log = logging.getLogger("tgqr.backup")

LEADER_PARTITION: Final = 0
_TRIES: Final = 5


async def back_up_as_leader(
    config: ServiceConfig,
    nc: Client,
    ownership: Ownership,
    event_log: EventLog,
    telemetry: Telemetry,
    *,
    clock: Callable[[], datetime],
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Back up every ``config.backups.every_s`` while this instance holds partition 0."""
    settings = config.backups
    if settings.to is None or settings.every_s is None:
        task_status.started()
        return  # not enabled: nothing to take
    js = nc.jetstream(timeout=30)
    key = await anyio.to_thread.run_sync(partial(load_backup_key, config.data_dir, create=True))
    target = open_target(settings.to, js=js)
    stats = BackupStats()
    task_status.started()
    while True:
        while not ownership.holds_partition(LEADER_PARTITION):
            await ownership.changed()
        log.info("this instance takes the automatic backups (it holds partition 0)")
        async with anyio.create_task_group() as tg:
            tg.start_soon(_until_moved, ownership, tg.cancel_scope)
            while True:
                manifest = await backup_once(js, target, key, keep=settings.keep, stats=stats)
                telemetry.backup("ok" if manifest is not None else "failed")
                await _record(event_log, manifest, stats, clock())
                await anyio.sleep(settings.every_s)


async def _until_moved(ownership: Ownership, scope: anyio.CancelScope) -> None:
    while ownership.holds_partition(LEADER_PARTITION):
        await ownership.changed()
    scope.cancel()


async def _record(
    event_log: EventLog, manifest: Manifest | None, stats: BackupStats, at: datetime
) -> None:
    """One ``BackupTaken`` or ``BackupFailed`` on the ``_backups`` chain."""
    event: BackupTaken | BackupFailed
    if manifest is None:
        event = BackupFailed(tenant=BACKUPS_CHAIN, attempt=0, at=at, error=stats.last_error)
    else:
        event = BackupTaken(
            tenant=BACKUPS_CHAIN,
            attempt=0,
            at=at,
            backup_id=manifest.id,
            full=manifest.parent is None,
            first_seq=manifest.first_seq,
            last_seq=manifest.last_seq,
            bytes=manifest.data_bytes,
        )
    for _ in range(_TRIES):
        chain = await event_log.load_tenant(BACKUPS_CHAIN)
        try:
            await event_log.append(BACKUPS_CHAIN, [event], chain.head)
        except ConcurrencyConflictError:
            continue
        return
    log.warning("backup outcome not recorded: the _backups chain kept moving")
