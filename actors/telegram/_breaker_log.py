"""Breaker changes as events: ``TelegramDown`` / ``TelegramUp`` on the service's own chain.

Every instance has its own breakers (each sees its own connections) and records what they do
in one chain of the shared log, ``_telegram``, appended with optimistic concurrency like any
tenant's. Instances race: before each append the chain is read again, and a change its last
event for that DC already states is not stored twice (the first instance to see a DC go down
records it; the others find it said).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Final

import anyio
from anyio.abc import TaskStatus

from events import (
    TELEGRAM_CHAIN,
    ConcurrencyConflictError,
    Event,
    EventLog,
    Record,
    TelegramDown,
    TelegramUp,
)

from ._breaker import DcBreakers, DcChange

__all__ = ["record_breaker_changes"]

_log = logging.getLogger("tgqr.telegram")
_TRIES: Final = 5


async def record_breaker_changes(
    breakers: DcBreakers,
    event_log: EventLog,
    clock: Callable[[], datetime],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Append each opening and closing of ``breakers`` to the ``_telegram`` chain, until
    cancelled: each DC's latest change whenever one happens, unless the chain's last word on
    that DC already says it (a restart, or another instance, states nothing twice).

    Raises:
        EventLogError: the log failed (the caller restarts this part).
    """
    after = 0
    task_status.started()
    while True:
        await breakers.changed(after)
        changes, after = breakers.changes(after)
        # Each DC's latest change only: a recorder behind its breakers (or restarted) must not
        # replay an old "down" after another instance already recorded the "up" that ended it.
        latest = {change.dc: change for change in changes}
        for change in latest.values():
            await _record(event_log, change, clock())


def _stated(records: tuple[Record, ...], change: DcChange) -> bool:
    """Whether the chain's last word on ``change.dc`` already is ``change``'s (a DC never said
    to be down needs no ``TelegramUp``)."""
    for record in reversed(records):
        event = record.event
        if isinstance(event, TelegramDown | TelegramUp) and event.dc == change.dc:
            return isinstance(event, TelegramUp) == change.up
    return change.up


def _event(change: DcChange, at: datetime) -> Event:
    if change.up:
        return TelegramUp(
            tenant=TELEGRAM_CHAIN, attempt=0, at=at, dc=change.dc, down_s=change.down_s
        )
    return TelegramDown(
        tenant=TELEGRAM_CHAIN,
        attempt=0,
        at=at,
        dc=change.dc,
        failures=change.failures,
        retry_after_s=change.retry_after_s,
    )


async def _record(event_log: EventLog, change: DcChange, at: datetime) -> None:
    for _ in range(_TRIES):
        chain = await event_log.load_tenant(TELEGRAM_CHAIN)
        if _stated(chain.records, change):
            return
        try:
            await event_log.append(TELEGRAM_CHAIN, [_event(change, at)], chain.head)
        except ConcurrencyConflictError:
            continue  # another instance appended: read again, it may have said it
        _log.warning(
            "Telegram DC %d is %s",
            change.dc,
            "back up" if change.up else f"down, retry in {change.retry_after_s:.1f} s",
        )
        return
    _log.warning("Telegram DC %d: its change was not recorded (the chain kept moving)", change.dc)
