"""Command latency: ``start`` to ``QrIssued``, seen by a plain nats-py client.

The service runs in a child process (in-process fake Telegram, real JetStream log); this
process sends ``start`` to distinct tenants at a fixed rate and times each until its QrIssued
arrives on ``tgqr.evt.<tenant>``. Then it steps the rate up to find the highest rate that is
sustained with p99 under 50 ms. Target: p99 < 50 ms at 200 commands/s.

    python -m benchmarks.commands [--json] [--rate 200] [--seconds 30]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import nats
from nats.aio.client import Client

from benchmarks._common import bench_args, nats_server, report


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _serve(url: str, data: str) -> None:
    from dataclasses import replace

    from actors.service import tune_gc

    tune_gc()  # as `tgqr up` does

    from actors.service import ServiceConfig, run_service
    from actors.telegram import FakeTelegram

    # The settings of the environment it is given (TGQR_HTTP, TGQR_METRICS: off below).
    base = ServiceConfig.from_env(os.environ, data_dir=Path(data), nats=url)
    config = replace(base, projector=False)
    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: run_service(
                config, telegram=FakeTelegram(), task_status=task_status
            )
        )
        print("ready", flush=True)
        await anyio.sleep_forever()


async def _phase(nc: Client, prefix: str, rate: float, seconds: float) -> tuple[list[float], float]:
    """Send at ``rate``/s for ``seconds``; return latencies (s) and the achieved send rate."""
    total = int(rate * seconds)
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = anyio.Event()
    sub = await nc.subscribe("tgqr.evt.*")

    async def collect() -> None:
        async for msg in sub.messages:
            if b'"type":"QrIssued"' in msg.data:
                tenant = msg.subject.rsplit(".", 1)[1]
                if (at := sent.pop(tenant, None)) is not None:
                    latencies.append(time.perf_counter() - at)
                    if len(latencies) == total:
                        done.set()

    async def send(tenant: str) -> None:
        sent[tenant] = time.perf_counter()
        await nc.request(f"tgqr.cmd.{tenant}.start", b"{}", timeout=30)

    async with anyio.create_task_group() as tg:
        tg.start_soon(collect)
        begin = time.perf_counter()
        for i in range(total):
            target = begin + i / rate
            if (delay := target - time.perf_counter()) > 0:
                await anyio.sleep(delay)
            tg.start_soon(send, f"{prefix}-{i}")
        achieved = total / (time.perf_counter() - begin)
        with anyio.move_on_after(30):
            await done.wait()
        tg.cancel_scope.cancel()
    await sub.unsubscribe()
    return latencies, achieved


async def _run(rate: float, seconds: float, ramp_seconds: float) -> dict[str, float | int]:
    with nats_server() as server, tempfile.TemporaryDirectory() as data:
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.commands", "--serve", server.url, data],
            stdout=subprocess.PIPE,
            # No page process and no operations port: this measures the command path.
            env={
                **os.environ,
                "TGQR_LOG_LEVEL": "ERROR",
                "TGQR_HTTP": "off",
                "TGQR_METRICS": "off",
            },
        )
        try:
            assert child.stdout is not None
            line = await anyio.to_thread.run_sync(child.stdout.readline)
            if line.strip() != b"ready":
                raise SystemExit("the service did not start")
            nc = await nats.connect(server.url)
            # Warm-up (first-use costs: stream subjects, code paths), not counted.
            await _phase(nc, "warmup", rate, 2.0)
            latencies, achieved = await _phase(nc, "steady", rate, seconds)
            best = 0.0
            step = rate
            while step <= 3200:
                lat, sent = await _phase(nc, f"ramp{int(step)}", step, ramp_seconds)
                complete = len(lat) == int(step * ramp_seconds)
                if not complete or sent < 0.95 * step or _percentile(lat, 0.99) >= 0.05:
                    break
                best = step
                step *= 2
            await nc.drain()
        finally:
            child.terminate()
            child.wait(10)
    return {
        "rate_per_s": rate,
        "commands": len(latencies),
        "cmd_latency_p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "cmd_latency_p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "cmd_latency_max_ms": round(max(latencies) * 1000, 2),
        "send_rate_achieved": round(achieved, 1),
        "cmd_max_per_s": best,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        anyio.run(_serve, sys.argv[2], sys.argv[3])
        return
    parser = bench_args(__doc__ or "")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--ramp-seconds", type=float, default=5.0)
    args = parser.parse_args()
    figures = anyio.run(_run, args.rate, args.seconds, args.ramp_seconds)
    report("command latency benchmark", figures, as_json=args.json)


if __name__ == "__main__":
    main()
