"""The service's automatic backups: one every ``every_s`` seconds into one target, keeping the
newest ``keep`` (and the backups they are built on). A failed backup is counted and logged,
never raised: the service goes on, and the next interval tries again."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from ._chain import chain_to, list_backups
from ._create import create_backup, prune_backups
from ._errors import BackupError
from ._format import Manifest
from ._key import BackupKey
from ._targets import Target

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["BackupStats", "backup_once", "run_backups"]

_log = logging.getLogger("tgqr.backup")


@dataclass
class BackupStats:
    """What the loop has done (read by the metrics: ``ok`` and ``failed`` only grow)."""

    ok: int = 0
    failed: int = 0
    last_ok_unix: float = 0.0
    last_bytes: int = 0
    last_error: str = ""

    def statistics(self) -> dict[str, float | int | str]:
        return {
            "ok": self.ok,
            "failed": self.failed,
            "last_ok_unix": self.last_ok_unix,
            "last_bytes": self.last_bytes,
            "last_error": self.last_error,
        }


async def backup_once(
    js: JetStreamContext, target: Target, key: BackupKey, *, keep: int, stats: BackupStats
) -> Manifest | None:
    """One automatic backup and its pruning; None (counted in ``stats.failed``, logged) when
    it failed. A new full backup starts whenever the newest chain has ``keep`` links, so that
    pruning can drop whole older chains. Never raises but for cancellation."""
    try:
        existing = await list_backups(target, key)
        full = not existing or len(chain_to(existing)) >= keep
        manifest = await create_backup(js, target, key, full=full)
        deleted = await prune_backups(target, key, keep)
    except Exception as exc:
        # Every failure, the storage's, NATS', a bug's: one line and a count, never a crash.
        stats.failed += 1
        stats.last_error = type(exc).__name__
        detail = str(exc) if isinstance(exc, BackupError) else repr(exc)
        _log.error("backup to %s failed: %s", target.describe(), detail)
        return None
    stats.ok += 1
    stats.last_ok_unix = time.time()
    stats.last_bytes = manifest.data_bytes
    stats.last_error = ""
    if deleted:
        _log.info("backup: pruned %d old backup(s) from %s", len(deleted), target.describe())
    return manifest


async def run_backups(
    js: JetStreamContext,
    target: Target,
    key: BackupKey,
    *,
    every_s: float,
    keep: int,
    stats: BackupStats | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    task_status: TaskStatus[BackupStats] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Back up every ``every_s`` seconds until cancelled, the first one at once after
    ``task_status.started(stats)``. Failures are counted in the stats and logged."""
    stats = stats or BackupStats()
    task_status.started(stats)
    _log.info("backups every %.0fs to %s, keeping %d", every_s, target.describe(), keep)
    while True:
        await backup_once(js, target, key, keep=keep, stats=stats)
        await sleep(every_s)
