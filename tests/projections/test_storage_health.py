"""The service warns as its stores fill: a ``storage`` field in ``tgqr.query.health`` with a
warning from 80% on, and one log line per step of filling (not one per reading)."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from events import ChainKey, Head, LoginStarted, MemoryEventLog, QrIssued, StorageLimits, StorageUse
from projections import ProjectionStore, Projector
from projections._storage import StorageAlarm, watch_storage
from tests.projections._histories import T0

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"k" * 32)
TEN = StorageLimits(max_bytes=1 << 20, max_msgs=10, max_msg_size=4096, max_consumers=4)


async def fill(log: MemoryEventLog, count: int) -> None:
    head = await log.append(
        "alice", [LoginStarted(tenant="alice", attempt=1, at=T0, deadline=T0)], Head()
    )
    for n in range(count - 1):
        event = QrIssued(tenant="alice", attempt=1, at=T0, url=f"tg://{n}", expires_at=T0, dc_id=1)
        head = await log.append("alice", [event], head)


async def test_health_reports_the_fill_and_warns_from_80_percent(tmp_path: Path) -> None:
    """7 of 10 messages: figures, no warning; 9 of 10: the warning names the store."""
    log = MemoryEventLog(KEY, limits=TEN)
    store = ProjectionStore.open(tmp_path / "h.duckdb")
    try:
        projector = Projector(log, store)
        await fill(log, 7)
        storage = (await projector.health())["storage"]
        assert (storage["stream_msgs"], storage["limit_msgs"]) == (7, 10)
        assert storage["limit_bytes"] == 1 << 20
        assert storage["fill"] == 0.7
        assert storage["warning"] is None
        await fill_more(log, 2)
        storage = (await projector.health())["storage"]
        assert storage["fill"] == 0.9
        assert storage["warning"].startswith("memory is 90% full")
        assert [s["name"] for s in storage["stores"]] == ["memory"]
    finally:
        store.close()


async def fill_more(log: MemoryEventLog, count: int) -> None:
    for n in range(count):
        head = await log.head("alice")
        event = QrIssued(tenant="alice", attempt=1, at=T0, url=f"tg://m{n}", expires_at=T0, dc_id=1)
        await log.append("alice", [event], head)


def use(fill: float) -> StorageUse:
    return StorageUse("TGQR_EVENTS", int(fill * 1000), 0, 1000, 0)


def test_the_alarm_logs_each_step_of_filling_once() -> None:
    """Below 80%: silence; then a warning, again every 5 points more, an error near full, and
    one line when the store is back below 80%."""
    alarm = StorageAlarm()
    assert alarm.lines([use(0.5)]) == []
    [(level, text)] = alarm.lines([use(0.81)])
    assert level == logging.WARNING
    assert "TGQR_EVENTS is 81% full" in text
    assert alarm.lines([use(0.84)]) == []
    assert [lvl for lvl, _ in alarm.lines([use(0.87)])] == [logging.WARNING]
    assert [lvl for lvl, _ in alarm.lines([use(0.97)])] == [logging.ERROR]
    assert alarm.lines([use(0.98)]) == []
    [(level, text)] = alarm.lines([use(0.3)])
    assert level == logging.INFO
    assert alarm.lines([use(0.3)]) == []


async def test_the_watch_logs_a_filling_log(caplog: pytest.LogCaptureFixture) -> None:
    """The projector's storage watch reads the log's fill and logs the warning."""
    log = MemoryEventLog(KEY, limits=TEN)
    await fill(log, 9)
    readings = 0
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def sleep(_seconds: float) -> None:
                nonlocal readings
                readings += 1
                if readings == 3:
                    tg.cancel_scope.cancel()
                await anyio.lowlevel.checkpoint()

            with caplog.at_level(logging.INFO, logger="tgqr.storage"):
                tg.start_soon(watch_storage, log, 60.0, sleep)
    warnings = [r for r in caplog.records if r.name == "tgqr.storage"]
    assert len(warnings) == 1  # three readings at 90%: one line
    assert warnings[0].levelno == logging.WARNING
    assert "memory is 90% full" in warnings[0].getMessage()
