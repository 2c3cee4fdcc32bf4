"""Login actors at scale: N tenants log in concurrently in one process.

FakeTelegram for Telegram, the real JetStreamEventLog on a private nats-server. Phase 1 starts
every actor and waits until each has issued its QR (all N actors live: RSS is measured here);
phase 2 scans every QR and waits until every actor has authorized and returned. The log is
then read back: exactly four events per tenant, no id twice. Target: rss_kib_per_actor <= 30.

    python -m benchmarks.actors [--json] [--tenants N]
"""

from __future__ import annotations

import gc
import random
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.abc
import nats
from cryptography.fernet import Fernet, MultiFernet

from actors.login import (
    ActorDeps,
    CommandReply,
    Envelope,
    Mail,
    Mailbox,
    Policy,
    Start,
    run_actor,
)
from actors.telegram import FakeTelegram
from actors.vault import MemorySessionVault
from benchmarks._common import bench_args, nats_server, report
from events import ChainKey, Event, Head, QrIssued, Record
from events.jetstream import JetStreamEventLog, ensure_stream

KEY = ChainKey(b"benchmark-key-0123456789abcdefgh")
_START_CONCURRENCY = 256


def _rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class _CountingLog(JetStreamEventLog):
    """Counts stored QrIssued events and wakes the benchmark when all N are in."""

    def __init__(self, *args: object, expected: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.qrs = 0
        self.expected = expected
        self.all_qrs = anyio.Event()

    async def append(self, tenant: str, events: Sequence[Event], head: Head) -> Head:
        new_head = await super().append(tenant, events, head)
        for event in events:
            if isinstance(event, QrIssued):
                self.qrs += 1
                if self.qrs == self.expected:
                    self.all_qrs.set()
        return new_head


async def _run(tenants: int) -> dict[str, float | int]:
    with nats_server() as server:
        nc = await nats.connect(server.url, pending_size=256 * 1024 * 1024)
        js = nc.jetstream()
        await ensure_stream(js)
        log = _CountingLog(js, KEY, expected=tenants)
        fake = FakeTelegram(token_ttl_s=3600.0)
        vault = MemorySessionVault(MultiFernet([Fernet(Fernet.generate_key())]))
        deps = ActorDeps(
            log=log,
            telegram=fake,
            vault=vault,
            clock=lambda: datetime.now(UTC),
            sleep=anyio.sleep,
            random=random.random,
            policy=Policy(),
        )
        names = [f"bench-{i:06d}" for i in range(tenants)]
        replies: list[CommandReply] = []
        gc.collect()
        rss_before = _rss_kib()
        started = time.perf_counter()
        # Actors start (fold their log) at most _START_CONCURRENCY at a time, as a supervisor
        # restoring tenants would; 10k simultaneous reads overrun JetStream's request timeout.
        limiter = anyio.Semaphore(_START_CONCURRENCY)

        async def start(tg: anyio.abc.TaskGroup, name: str, mailbox: Mailbox) -> None:
            async with limiter:
                await tg.start(run_actor, name, mailbox, deps)

        async with anyio.create_task_group() as tg:
            streams = []
            for name in names:
                send, receive = anyio.create_memory_object_stream[Mail](4)
                streams.append((send, receive))
                send.send_nowait(Envelope(Start(), replies.append))
                tg.start_soon(start, tg, name, Mailbox(send, receive))
            with anyio.fail_after(600):
                await log.all_qrs.wait()
            live_at = time.perf_counter()
            gc.collect()
            rss_live = _rss_kib()
            live_clients = fake.statistics().open_clients
            for i, name in enumerate(names):
                fake.scan(user_id=1000 + i, tenant=name)
        finished = time.perf_counter()
        for send, receive in streams:
            send.close()
            receive.close()

        records: list[Record] = []
        async for item in log.read_all():
            assert isinstance(item, Record), item
            records.append(item)
        per_tenant = Counter(r.tenant for r in records)
        ids = Counter(r.event.id for r in records)
        lost = sum(max(0, 4 - per_tenant.get(n, 0)) for n in names)
        duplicated = sum(c - 1 for c in ids.values() if c > 1) + sum(
            max(0, per_tenant.get(n, 0) - 4) for n in names
        )
        authorized = sum(1 for r in records if type(r.event).__name__ == "Authorized")
        await nc.drain()

    wall = finished - started
    return {
        "tenants": tenants,
        "wall_s": round(wall, 3),
        "time_to_all_qr_s": round(live_at - started, 3),
        "actor_logins_per_s": round(authorized / wall, 1),
        "live_clients_at_peak": live_clients,
        "rss_delta_kib_all_live": rss_live - rss_before,
        "rss_kib_per_actor": round((rss_live - rss_before) / tenants, 2),
        "peak_rss_kib": _rss_kib("VmHWM"),
        "events": len(records),
        "authorized": authorized,
        "lost_events": lost,
        "duplicated_events": duplicated,
        "ok_replies": sum(1 for r in replies if r.ok),
    }


def main(argv: list[str] | None = None) -> None:
    parser = bench_args(__doc__ or "")
    parser.add_argument("--tenants", type=int, default=10_000)
    args = parser.parse_args(argv)
    figures = anyio.run(_run, args.tenants)
    report("login actors (FakeTelegram + JetStream)", figures, as_json=args.json)


if __name__ == "__main__":
    main()
