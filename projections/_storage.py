"""How full the log and its buckets are: the ``storage`` field of ``tgqr.query.health`` and the
log lines of the service as they fill (the policy: :mod:`events.storage`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from events import EventLog, EventLogError, StorageUse, storage_warning

__all__ = ["StorageAlarm", "storage_report", "watch_storage"]

_log = logging.getLogger("tgqr.storage")

_STEP: Final = 0.05
"""A store that keeps filling is logged again each time it is this much fuller."""


def storage_report(uses: Sequence[StorageUse]) -> dict[str, Any]:
    """The ``storage`` field of the health reply: the log's figures (the first store), a
    ``warning`` naming every store at least :data:`events.FILL_WARNING` full (else None),
    and each store's figures under ``stores``."""
    stores = [
        {
            "name": use.name,
            "bytes": use.bytes,
            "limit_bytes": use.max_bytes,
            "msgs": use.msgs,
            "limit_msgs": use.max_msgs,
            "fill": round(use.fill, 4),
        }
        for use in uses
    ]
    first = uses[0] if uses else StorageUse("", 0, 0)
    return {
        "stream_bytes": first.bytes,
        "limit_bytes": first.max_bytes,
        "stream_msgs": first.msgs,
        "limit_msgs": first.max_msgs,
        "fill": round(max((use.fill for use in uses), default=0.0), 4),
        "warning": storage_warning(uses),
        "stores": stores,
    }


class StorageAlarm:
    """Which readings deserve a log line: a store's first reading at or above
    :data:`events.FILL_WARNING`, each further :data:`_STEP` of fill, and its return below."""

    def __init__(self) -> None:
        self._logged: dict[str, float] = {}

    def lines(self, uses: Sequence[StorageUse]) -> list[tuple[int, str]]:
        """(level, message) pairs to log for these readings."""
        out: list[tuple[int, str]] = []
        for use in uses:
            last = self._logged.get(use.name)
            if use.filling:
                if last is None or use.fill >= last + _STEP:
                    self._logged[use.name] = use.fill
                    level = logging.ERROR if use.fill >= 1.0 - _STEP else logging.WARNING
                    out.append((level, use.describe()))
            elif last is not None:
                del self._logged[use.name]
                out.append((logging.INFO, f"{use.name} is {use.fill:.0%} full again"))
        return out


async def watch_storage(
    log: EventLog, every_s: float, sleep: Callable[[float], Awaitable[None]]
) -> None:
    """Read the stores' fill every ``every_s`` seconds and log what :class:`StorageAlarm`
    says, until cancelled. A reading that fails is skipped (the log's readers report that)."""
    alarm = StorageAlarm()
    while True:
        try:
            uses = await log.storage()
        except EventLogError as exc:
            _log.debug("storage reading skipped: %s", exc)
        else:
            for level, message in alarm.lines(uses):
                _log.log(level, "storage: %s", message)
        await sleep(every_s)
