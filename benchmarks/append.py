"""Append throughput: chained optimistic appends vs raw js.publish, same run, same server.

200 tenants x 50 events, all tenants concurrently, each tenant's appends one after another
(one writer per aggregate, each awaiting its ack). Target: append_ratio >= 0.7.

    python -m benchmarks.append [--json] [--tenants N] [--events N]
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import anyio
import nats

from benchmarks._common import bench_args, nats_server, report
from events import MAC_HEADER, ChainKey, Head, QrIssued, encode_event, seal, verify_log
from events.jetstream import JetStreamEventLog, ensure_stream

KEY = ChainKey(b"benchmark-key-0123456789abcdefgh")


def _event(tenant: str, n: int) -> QrIssued:
    now = datetime.now(UTC)
    return QrIssued(
        tenant=tenant, attempt=1, at=now, url=f"tg://login?token={n:040d}", expires_at=now, dc_id=1
    )


async def _run(tenants: int, per_tenant: int) -> dict[str, float | int]:
    with nats_server() as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_stream(js)
        log = JetStreamEventLog(js, KEY)
        total = tenants * per_tenant

        # The caller builds its events; the log seals, encodes, MACs and appends them.
        batches = {
            f"tenant-{t}": [[_event(f"tenant-{t}", n)] for n in range(per_tenant)]
            for t in range(tenants)
        }

        async def appender(tenant: str) -> None:
            head = Head()
            for batch in batches[tenant]:
                head = await log.append(tenant, batch, head)

        # Same config as the event stream, other subjects: raw messages stay out of the chains.
        await ensure_stream(js, name="RAW_BENCH", subjects=["raw.>"])
        payloads = {t: encode_event(_event(f"raw-{t}", 0)) for t in range(tenants)}

        async def raw(t: int) -> None:
            subject = f"raw.{t}"
            for _ in range(per_tenant):
                await js.publish(subject, payloads[t])

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for t in range(tenants):
                tg.start_soon(raw, t)
        raw_s = time.perf_counter() - started

        async def raw_with_headers(t: int) -> None:
            # What the contract makes every append carry, without the log's own code.
            subject, head = f"raw.h{t}", Head()
            for n in range(per_tenant):
                sealed = seal(_event(f"raw-{t}", n), head.mac, KEY)
                headers = {
                    "Nats-Msg-Id": sealed.event.id,
                    "Nats-Expected-Last-Subject-Sequence": str(head.seq),
                    MAC_HEADER: sealed.mac,
                }
                ack = await js.publish(subject, sealed.data, headers=headers)
                head = Head(ack.seq, sealed.mac)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for t in range(tenants):
                tg.start_soon(raw_with_headers, t)
        headers_s = time.perf_counter() - started

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for t in range(tenants):
                tg.start_soon(appender, f"tenant-{t}")
        append_s = time.perf_counter() - started

        started = time.perf_counter()
        verified = await verify_log(log, KEY, tenant=None)
        verify_s = time.perf_counter() - started
        await nc.drain()

    append_rate = total / append_s
    raw_rate = total / raw_s
    return {
        "tenants": tenants,
        "events": total,
        "append_events_per_s": round(append_rate, 1),
        "raw_publish_per_s": round(raw_rate, 1),
        "append_ratio": round(append_rate / raw_rate, 3),
        "raw_with_headers_per_s": round(total / headers_s, 1),
        "append_vs_headers_ratio": round(append_rate / (total / headers_s), 3),
        "verify_events_per_s": round(verified.checked / verify_s, 1),
        "verify_breaks": len(verified.breaks),
    }


def main() -> None:
    parser = bench_args(__doc__ or "")
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--events", type=int, default=50)
    args = parser.parse_args()
    figures = anyio.run(_run, args.tenants, args.events)
    report("append benchmark", figures, as_json=args.json)


if __name__ == "__main__":
    main()
