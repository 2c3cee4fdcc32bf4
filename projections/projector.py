"""The projector: follows the event log into the DuckDB tables, batch by batch.

Two tasks overlap: the reader pulls ``EventLog.read_chunks(checkpoint + 1, follow=True)`` (raw
messages, decoded by nobody but the store) into a bounded buffer while the writer folds and
commits the previous batch in a worker thread
(one transaction per batch, checkpoint included: a crash anywhere neither double-counts nor
skips). A batch is up to ``max_batch`` events or what arrived within ``max_delay`` seconds;
with a backlog (more than ``max_batch`` waiting: catching up, or a burst) it takes up to
``backlog_batch``. DuckDB statements cost milliseconds however few rows they touch, so
1000-event transactions would cap catch-up at ~16k events/s; 20k-event ones reach ~85k.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio import to_thread

from events import ChainKey, EventLog, StoredMessage

from ._storage import storage_report, watch_storage
from ._telegram import telegram_health
from .metrics import DEFAULT_WINDOW_S
from .store import REBUILD, FaultHook, ProjectionStore

__all__ = ["Projector", "ProjectorStatistics", "RebuildResult", "open_projector"]

Clock = Callable[[], datetime]
BatchSpan = Callable[[Sequence[StoredMessage]], AbstractContextManager[object]]
"""Opens a span around applying one batch (the composition root's tracing)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ProjectorStatistics:
    """A snapshot of the projector's progress.

    ``lag_events`` is what the reader has seen but the tables do not hold yet (the log may
    hold more: :meth:`Projector.health` asks it).
    """

    applied_events: int
    batches: int
    dead_letters: int
    checkpoint: int
    last_seen_seq: int
    buffered: int
    lag_events: int
    rebuilding: bool


@dataclass(frozen=True, slots=True)
class RebuildResult:
    """What a rebuild replayed: events folded, the new checkpoint, wall seconds taken."""

    events: int
    checkpoint: int
    seconds: float


class Projector:
    """Projects one EventLog into one :class:`ProjectionStore` and answers queries on it.

    ``fault`` is a test hook handed to :meth:`ProjectionStore.apply_batch` (see
    :data:`projections.store.FaultHook`); ``clock`` gives "now" for metrics windows and lag.
    Batches: see the module docstring; at most ``max_buffered`` events wait in memory.
    While it runs it reads how full the log and its buckets are every ``storage_every_s``
    seconds (``sleep`` waits between readings) and logs a warning as one fills up.
    ``batch_span``: a context around applying each live batch (a trace span), if any.
    """

    def __init__(
        self,
        log: EventLog,
        store: ProjectionStore,
        *,
        clock: Clock = _utcnow,
        max_batch: int = 1000,
        max_delay: float = 0.1,
        backlog_batch: int = 20_000,
        max_buffered: int = 40_000,
        fault: FaultHook | None = None,
        storage_every_s: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        batch_span: BatchSpan | None = None,
    ) -> None:
        if not 1 <= max_batch <= backlog_batch <= max_buffered:
            raise ValueError("need 1 <= max_batch <= backlog_batch <= max_buffered")
        self._log = log
        self._store = store
        self._clock = clock
        self._max_batch = max_batch
        self._backlog_batch = backlog_batch
        self._max_delay = max_delay
        self._max_buffered = max_buffered
        self._fault = fault
        self._storage_every_s = storage_every_s
        self._sleep = sleep
        self._batch_span = batch_span
        self._buffer: list[StoredMessage] = []
        self._in_flight: list[StoredMessage] = []
        self._grown = anyio.Event()
        self._space = anyio.Event()
        self._progress = anyio.Event()
        self._apply_lock = anyio.Lock()
        self._rebuild_lock = anyio.Lock()
        self._checkpoint = 0
        self._last_seen = 0
        self._applied = 0
        self._batches = 0
        self._dead = 0
        self._rebuilding = False
        self._rebuild_seq = 0
        self._rebuild_target = 0

    @property
    def store(self) -> ProjectionStore:
        return self._store

    def statistics(self) -> ProjectorStatistics:
        return ProjectorStatistics(
            applied_events=self._applied,
            batches=self._batches,
            dead_letters=self._dead,
            checkpoint=self._checkpoint,
            last_seen_seq=self._last_seen,
            buffered=len(self._buffer) + len(self._in_flight),
            lag_events=max(0, self._last_seen - self._checkpoint),
            rebuilding=self._rebuilding,
        )

    # -- running -------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the log until cancelled; ready once the checkpoint is loaded.

        Raises:
            ProjectionStoreError: DuckDB failed (the failed batch is rolled back; a new
                projector resumes from the last committed checkpoint).
            EventLogError: the log could not be read.
        """
        info = await to_thread.run_sync(self._store.checkpoint)
        self._checkpoint = self._last_seen = info.seq
        self._buffer.clear()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read, info.seq + 1)
            tg.start_soon(watch_storage, self._log, self._storage_every_s, self._sleep)
            task_status.started()
            await self._write()

    async def _read(self, start: int) -> None:
        async for chunk in self._log.read_chunks(start, follow=True):
            buffer = self._buffer
            before = len(buffer)
            buffer.extend(chunk)
            self._last_seen = chunk[-1].seq
            if before == 0 or len(buffer) >= self._max_batch:
                self._grown.set()
            while len(buffer) >= self._max_buffered:
                self._space = anyio.Event()
                await self._space.wait()

    async def _wait_for_size(self, size: int) -> None:
        while len(self._buffer) < size:
            self._grown = anyio.Event()
            await self._grown.wait()

    async def _write(self) -> None:
        while True:
            await self._wait_for_size(1)
            if len(self._buffer) < self._max_batch:
                with anyio.move_on_after(self._max_delay):
                    await self._wait_for_size(self._max_batch)
            size = self._max_batch if len(self._buffer) <= self._max_batch else self._backlog_batch
            batch = self._in_flight = self._buffer[:size]
            del self._buffer[:size]
            self._space.set()
            span = self._batch_span(batch) if self._batch_span else nullcontext()
            async with self._apply_lock:
                with span:
                    result = await to_thread.run_sync(
                        functools.partial(self._store.apply_batch, batch, fault=self._fault)
                    )
                self._checkpoint = max(self._checkpoint, result.checkpoint)
            self._in_flight = []
            self._applied += result.applied
            self._dead += result.dead_letters
            self._batches += 1
            self._progress.set()
            self._progress = anyio.Event()

    async def wait_for(self, seq: int) -> None:
        """Block until the tables hold every event up to stream sequence ``seq``."""
        while self._checkpoint < seq:
            await self._progress.wait()

    # -- queries -------------------------------------------------------------------------

    async def status(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Rows of ``tenant_status`` (all tenants, or one). Raises ProjectionStoreError."""
        return await to_thread.run_sync(self._store.status, tenant)

    async def metrics(
        self, *, window_s: int = DEFAULT_WINDOW_S, tenant: str | None = None
    ) -> dict[str, Any]:
        """The ``tgqr.query.metrics`` reply for the window ending now (the injected clock).

        Raises:
            ProjectionStoreError: DuckDB failed.
        """
        call = functools.partial(
            self._store.metrics, now=self._clock(), window_s=window_s, tenant=tenant
        )
        return await to_thread.run_sync(call)

    async def health(self) -> dict[str, Any]:
        """Lag figures: ``lag_events`` = log's last sequence - checkpoint; ``lag_s`` = age of
        the oldest event read but not yet applied (0 when caught up); ``storage``: how full
        the log and its buckets are, with a ``warning`` once one is 80% full. While a rebuild
        runs, ``rebuild``: ``{"seq": last sequence folded, "target": the log's last sequence
        when it began}`` (what ``tgqr projections rebuild`` draws its progress from).

        Raises:
            ProjectionStoreError: DuckDB failed.
            EventLogError: the log did not answer.
        """
        last = await self._log.last_seq()
        info = await to_thread.run_sync(self._store.checkpoint)
        lag_events = max(0, last - info.seq)
        lag_s = 0.0
        if lag_events:
            pending = self._in_flight or self._buffer
            oldest = pending[0].stored_at if pending else None
            oldest = oldest or info.stored_at
            if oldest is not None:
                lag_s = max(0.0, (self._clock() - oldest).total_seconds())
        reply: dict[str, Any] = {
            "ok": True,
            "lag_events": lag_events,
            "lag_s": lag_s,
            "last_seq": last,
            "checkpoint": info.seq,
            "duckdb": "ok",
            "storage": storage_report(await self._log.storage()),
            "telegram": telegram_health(await to_thread.run_sync(self._store.telegram_down)),
        }
        if self._rebuilding:
            reply["rebuild"] = {"seq": self._rebuild_seq, "target": self._rebuild_target}
        return reply

    # -- rebuild -------------------------------------------------------------------------

    async def rebuild(self) -> RebuildResult:
        """Replay the log from sequence 1 into fresh tables and swap them in atomically.

        Queries keep reading the old tables until the swap. The live writer keeps going
        during the replay and pauses only for the final catch-up and the swap. Concurrent
        calls run one after the other.

        Raises:
            ProjectionStoreError: DuckDB failed (the live tables are untouched).
            EventLogError: the log could not be read.
        """
        async with self._rebuild_lock:
            started = time.perf_counter()
            self._rebuild_seq = 0
            self._rebuild_target = await self._log.last_seq()
            self._rebuilding = True
            try:
                await to_thread.run_sync(self._store.begin_rebuild)
                seq, events = await self._replay(1)
                async with self._apply_lock:
                    live = await to_thread.run_sync(self._store.checkpoint)
                    if seq < live.seq:
                        seq, more = await self._replay(seq + 1)
                        events += more
                    info = await to_thread.run_sync(self._store.swap_rebuild)
                    self._checkpoint = info.seq
                    self._last_seen = max(self._last_seen, info.seq)
            finally:
                self._rebuilding = False
            self._progress.set()
            self._progress = anyio.Event()
            return RebuildResult(events, info.seq, time.perf_counter() - started)

    async def _replay(self, start: int) -> tuple[int, int]:
        """Fold the log from ``start`` to its current end into the rebuild tables, reading
        the next batch while the previous one is written. Returns (checkpoint, events)."""
        send, receive = anyio.create_memory_object_stream[list[StoredMessage]](2)
        done = (start - 1, 0)

        async def read() -> None:
            async with send:
                batch: list[StoredMessage] = []
                async for chunk in self._log.read_chunks(start):
                    batch += chunk
                    while len(batch) >= self._backlog_batch:
                        await send.send(batch[: self._backlog_batch])
                        del batch[: self._backlog_batch]
                if batch:
                    await send.send(batch)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            async with receive:
                async for batch in receive:
                    result = await to_thread.run_sync(
                        functools.partial(self._store.apply_batch, batch, generation=REBUILD)
                    )
                    done = (result.checkpoint, done[1] + result.applied)
                    self._rebuild_seq = result.checkpoint
        return done


@asynccontextmanager
async def open_projector(
    log: EventLog, path: str | Path, *, key: ChainKey | None = None, **options: Any
) -> AsyncIterator[Projector]:
    """Open the DuckDB file at ``path`` and yield a :class:`Projector` on it; the file is
    closed on exit. With the chain ``key`` a message whose MAC does not verify is a dead
    letter and quarantines its tenant. ``options`` go to :class:`Projector`. Blocks while
    opening.

    Raises:
        ProjectionStoreError: the file cannot be opened (e.g. another process holds it).
    """
    store = await to_thread.run_sync(lambda: ProjectionStore.open(path, key=key))
    try:
        yield Projector(log, store, **options)
    finally:
        with anyio.CancelScope(shield=True):
            await to_thread.run_sync(store.close)
