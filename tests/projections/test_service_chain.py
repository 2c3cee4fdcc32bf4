"""The service's own ``_telegram`` chain in the projection: no tenant row, no event counts,
never listed as quarantined, and its last word per DC in ``telegram_dcs`` (what health shows);
the recorder that writes it states each change once even when instances race."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import msgspec
import pytest

from actors.telegram import BreakerPolicy, DcBreakers, record_breaker_changes
from events import (
    TELEGRAM_CHAIN,
    ChainKey,
    Head,
    LoginStarted,
    MemoryEventLog,
    StoredMessage,
    TelegramDown,
    TelegramUp,
    event_subject,
)
from projections import ProjectionStore
from projections._telegram import telegram_health

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"s" * 32)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def stored(log: MemoryEventLog) -> list[StoredMessage]:
    return [m async for chunk in log.read_chunks(1) for m in chunk]


def down(dc: int) -> TelegramDown:
    return TelegramDown(
        tenant=TELEGRAM_CHAIN, attempt=0, at=T0, dc=dc, failures=5, retry_after_s=2.0
    )


async def test_the_telegram_chain_is_no_tenant_and_feeds_health() -> None:
    """Down then up for DC 2, down for DC 4: status lists alice only, health DC 4 only."""
    log = MemoryEventLog(KEY)
    await log.append(
        "alice",
        [LoginStarted(tenant="alice", attempt=1, at=T0, deadline=T0 + timedelta(minutes=1))],
        Head(),
    )
    head = await log.append(TELEGRAM_CHAIN, [down(2)], Head())
    store = ProjectionStore.open(":memory:", key=KEY)
    try:
        store.apply_batch(await stored(log))
        assert [row["dc"] for row in telegram_health(store.telegram_down())["dcs_down"]] == [2]
        up = TelegramUp(tenant=TELEGRAM_CHAIN, attempt=0, at=T0, dc=2, down_s=3.5)
        await log.append(TELEGRAM_CHAIN, [up, down(4)], head)
        store.apply_batch(await stored(log))
        health = telegram_health(store.telegram_down())
        assert health == {
            "dcs_down": [
                {"dc": 4, "since": "2026-01-01T00:00:00Z", "failures": 5, "retry_after_s": 2.0}
            ]
        }
        assert [row["tenant"] for row in store.status()] == ["alice"]
        assert store.status(TELEGRAM_CHAIN) == []
        counted = {row[1] for row in store.dump()["event_counts"]}
        assert counted == {"alice"}
    finally:
        store.close()


async def test_a_forged_message_on_the_telegram_chain_lists_no_tenant() -> None:
    """A message on ``tgqr.evt._telegram`` that does not verify is a dead letter, and the
    status view still does not show ``_telegram`` (as quarantined or otherwise)."""
    log = MemoryEventLog(KEY)
    forged = msgspec.json.encode(
        {"type": "TelegramDown", "tenant": TELEGRAM_CHAIN, "attempt": 0,
         "at": "2026-01-01T00:00:00Z", "dc": 2, "failures": 5, "retry_after_s": 1.0}
    )  # fmt: skip
    log.inject(event_subject(TELEGRAM_CHAIN), forged, "f" * 64)
    store = ProjectionStore.open(":memory:", key=KEY)
    try:
        store.apply_batch(await stored(log))
        assert store.status() == []
        assert store.telegram_down() == []
    finally:
        store.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_racing_recorders_state_each_change_once() -> None:
    """Two instances' breakers see DC 2 go down and come back: the chain says each once."""
    log = MemoryEventLog(KEY)
    clock = Clock()
    policy = BreakerPolicy(failures=1, cool_down_s=1.0)
    ours = [DcBreakers(policy, clock=clock, random=lambda: 0.0) for _ in range(2)]

    async def settle(records: int) -> None:
        while len((await log.load_tenant(TELEGRAM_CHAIN)).records) < records:
            await anyio.lowlevel.checkpoint()
        for _ in range(50):  # let the other recorder read the chain and find it said
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for breakers in ours:
                await tg.start(record_breaker_changes, breakers, log, lambda: T0)
            for breakers in ours:
                breakers.admit(2)
                breakers.failed(2)
            await settle(1)
            clock.now += 1.0
            for breakers in ours:
                breakers.admit(2)
                breakers.succeeded(2)
            await settle(2)
            tg.cancel_scope.cancel()
    kinds = [type(r.event).__name__ for r in (await log.load_tenant(TELEGRAM_CHAIN)).records]
    assert kinds == ["TelegramDown", "TelegramUp"]
    up = (await log.load_tenant(TELEGRAM_CHAIN)).records[1].event
    assert isinstance(up, TelegramUp)
    assert up.down_s == 1.0
