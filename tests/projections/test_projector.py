"""The projector: exactly-once under crashes, dead letters, following, rebuild."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from events import ChainKey, Event, MemoryEventLog
from projections import ProjectionStore, Projector
from tests.projections._histories import T0, Script, fill, interleave, tenant_events

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"k" * 32)


class CrashError(Exception):
    """The fault the tests inject."""


def crash_at(step: str, call: int) -> Callable[[str], None]:
    """A fault hook raising CrashError at ``step`` of the ``call``-th batch."""
    seen = {"n": 0}

    def hook(name: str) -> None:
        if name == "begun":
            seen["n"] += 1
        if name == step and seen["n"] == call:
            raise CrashError(f"{step} of batch {call}")

    return hook


def history() -> list[Event]:
    scripts = [
        [Script("authorized", qrs=2, floods=1), Script("expired", qrs=3)],
        [Script("password", restarts=1), Script("crashed", restarts=2)],
        [Script("cancelled"), Script("live", qrs=2, floods=2)],
        [Script("failed", floods=1), Script("authorized", logout=True)],
    ]
    per_tenant = [tenant_events(f"t{i}", s) for i, s in enumerate(scripts)]
    events = interleave(per_tenant, [i * 7 % 5 for i in range(400)])
    assert len(events) > 30
    return events


async def clean_dump(log: MemoryEventLog, path: Path) -> dict[str, list[Any]]:
    store = ProjectionStore.open(path)
    try:
        async for chunk in log.read_chunks(1):
            store.apply_batch(chunk)
        return store.dump()
    finally:
        store.close()


async def catch_up(log: MemoryEventLog, store: ProjectionStore, **options: Any) -> Projector:
    """Run a projector until it holds the whole log, then stop it."""
    projector = Projector(log, store, **options)
    last = await log.last_seq()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(projector.run)
            await projector.wait_for(last)
            tg.cancel_scope.cancel()
    return projector


@pytest.mark.parametrize("step", ["begun", "loaded", "upserted", "checkpointed", "committed"])
async def test_crash_anywhere_then_restart_equals_clean_fold(tmp_path: Path, step: str) -> None:
    """A projector killed between or inside batches and restarted on the same file ends with
    exactly the tables of one clean fold: nothing counted twice, nothing skipped."""
    log = MemoryEventLog(KEY)
    events = history()
    await fill(log, events)
    path = tmp_path / "p.duckdb"
    store = ProjectionStore.open(path)
    projector = Projector(log, store, max_batch=7, backlog_batch=7, fault=crash_at(step, 3))
    with anyio.fail_after(10), pytest.raises(ExceptionGroup) as caught:
        async with anyio.create_task_group() as tg:
            await tg.start(projector.run)
    assert caught.group_contains(CrashError)
    expected_checkpoint = 21 if step == "committed" else 14
    assert store.checkpoint().seq == expected_checkpoint
    store.close()

    store = ProjectionStore.open(path)  # as after a process restart
    try:
        restarted = await catch_up(log, store, max_batch=5, backlog_batch=5)
        assert restarted.statistics().applied_events == len(events) - expected_checkpoint
        assert store.dump() == await clean_dump(log, tmp_path / "clean.duckdb")
    finally:
        store.close()


async def test_follows_new_events_and_waits_for_the_batch_delay(tmp_path: Path) -> None:
    """Events appended while it runs are applied without a full batch (after max_delay)."""
    log = MemoryEventLog(KEY)
    store = ProjectionStore.open(tmp_path / "p.duckdb")
    projector = Projector(log, store, max_batch=1000, max_delay=0.01)
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(projector.run)
                events = tenant_events("acme", [Script("authorized")])
                await fill(log, events[:2])
                await projector.wait_for(2)
                assert (await projector.status("acme"))[0]["state"] == "pending"
                await fill(log, events[2:])
                await projector.wait_for(len(events))
                [row] = await projector.status("acme")
                assert row["state"] == "authorized"
                assert row["updated_at"].tzinfo is not None
                stats = projector.statistics()
                assert stats.checkpoint == len(events)
                assert stats.lag_events == 0
                tg.cancel_scope.cancel()
    finally:
        store.close()


async def test_undecodable_messages_become_dead_letters(tmp_path: Path) -> None:
    """Garbage on an event subject is recorded with its sequence and reason and skipped."""
    log = MemoryEventLog(KEY)
    events = tenant_events("acme", [Script("expired")])
    await fill(log, events[:1])
    bad = log.inject("tgqr.evt.acme", b"not json")
    alien = log.inject("tgqr.evt.acme", b'{"type": "Teleported", "tenant": "acme"}')
    store = ProjectionStore.open(tmp_path / "p.duckdb")
    try:
        projector = await catch_up(log, store)
        dump = store.dump()
        assert [row[:2] for row in dump["dead_letters"]] == [
            (bad, "tgqr.evt.acme"),
            (alien, "tgqr.evt.acme"),
        ]
        assert "Teleported" in dump["dead_letters"][1][2]
        assert store.checkpoint().seq == alien
        assert projector.statistics().dead_letters == 2
    finally:
        store.close()


async def test_rebuild_replays_into_fresh_tables_and_swaps(tmp_path: Path) -> None:
    """A rebuild yields the tables of a clean fold and the projector keeps following."""
    log = MemoryEventLog(KEY)
    events = history()
    half = len(events) // 2
    await fill(log, events[:half])
    store = ProjectionStore.open(tmp_path / "p.duckdb")
    projector = Projector(log, store, max_batch=9, backlog_batch=9, max_delay=0.01)
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(projector.run)
                await projector.wait_for(half)
                result = await projector.rebuild()
                assert result.events == half
                assert result.checkpoint == half
                await fill(log, events[half:])
                await projector.wait_for(len(events))
                tg.cancel_scope.cancel()
        assert store.dump() == await clean_dump(log, tmp_path / "clean.duckdb")
    finally:
        store.close()


async def test_rebuild_heals_a_corrupted_table(tmp_path: Path) -> None:
    """Rows damaged behind the projector's back are restored by a rebuild."""
    log = MemoryEventLog(KEY)
    await fill(log, history())
    store = ProjectionStore.open(tmp_path / "p.duckdb")
    try:
        projector = await catch_up(log, store)
        with store._transaction() as cur:
            cur.execute("UPDATE tenant_status SET attempts = 99")
            cur.execute("DELETE FROM login_attempts")
        assert store.dump() != await clean_dump(log, tmp_path / "clean.duckdb")
        await projector.rebuild()
        assert store.dump() == await clean_dump(log, tmp_path / "clean2.duckdb")
    finally:
        store.close()


async def test_health_reports_lag_against_the_log(tmp_path: Path) -> None:
    """Before the projector runs, lag is the whole log; its age comes from the clock."""
    log = MemoryEventLog(KEY)
    await fill(log, tenant_events("acme", [Script("expired")]))
    store = ProjectionStore.open(tmp_path / "p.duckdb")
    try:
        projector = Projector(log, store, clock=lambda: T0)
        health = await projector.health()
        assert health["lag_events"] == await log.last_seq()
        assert health["checkpoint"] == 0
        await catch_up(log, store)
        health = await projector.health()
        assert (health["lag_events"], health["lag_s"]) == (0, 0.0)
    finally:
        store.close()


class _SignallingStore(ProjectionStore):
    """A store that tells the event loop each time a rebuild batch is committed."""

    rebuilt: anyio.Event

    def apply_batch(self, items: Any, **options: Any) -> Any:
        result = super().apply_batch(items, **options)
        if options.get("generation", "") != "":
            anyio.from_thread.run_sync(self.rebuilt.set)
        return result


async def test_health_shows_a_rebuild_in_progress(tmp_path: Path) -> None:
    """While a rebuild runs, health says how far it got (``rebuild.seq``) out of the log's
    last sequence when it began (``rebuild.target``); afterwards it says nothing of it."""
    log = MemoryEventLog(KEY)
    await fill(log, history())
    last = await log.last_seq()
    store = _SignallingStore.open(tmp_path / "p.duckdb")
    assert isinstance(store, _SignallingStore)
    store.rebuilt = anyio.Event()
    try:
        projector = Projector(log, store, max_batch=last, backlog_batch=last, max_buffered=last)
        assert "rebuild" not in await projector.health()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                async with projector._apply_lock:  # the rebuild stops before its swap
                    tg.start_soon(projector.rebuild)
                    await store.rebuilt.wait()
                    health = await projector.health()
                assert health["rebuild"] == {"seq": last, "target": last}
        assert "rebuild" not in await projector.health()
    finally:
        store.close()
