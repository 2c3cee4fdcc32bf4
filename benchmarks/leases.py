"""Session lease latency: ``tgqr.session.<tenant>.lease`` request to reply, for both suites.

The service runs in a child process in simulator mode (real JetStream log, the simulator's
Telethon logins, the KV vault); this process logs ``--tenants`` tenants in over NATS, then
leases and releases each tenant's session ``--rounds`` times per suite, one request at a
time, with a plain nats-py client. The latency is what an app waits for: the request, the
tenant's actor (started again and hydrated from the tenant's log: after a release the actor
rests), its vault read, the HPKE seal and the ``SessionLeased`` append, and the reply. A renewal
(the actor is up: the holder's hot path) is timed too; the app's own work (key generation,
HPKE open) apart. Target: p99 < 50 ms.

    python -m benchmarks.leases [--json] [--tenants 40] [--rounds 5]
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import anyio
import nats
from nats.aio.client import Client

from actors.hpke import KeyPair, lease_info, proof_info
from benchmarks._common import bench_args, nats_server, report

_SUITES = ("mlkem768-x25519", "x25519")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _ask(nc: Client, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    msg = await nc.request(subject, json.dumps(body).encode(), timeout=30)
    reply: dict[str, Any] = json.loads(msg.data)
    if not reply.get("ok"):
        raise SystemExit(f"{subject}: {reply}")
    return reply


async def _log_in(nc: Client, tenants: list[str]) -> None:
    """start, the QR, the phone's scan, Authorized: for every tenant, concurrently."""
    authorized = {t: anyio.Event() for t in tenants}
    issued = {t: anyio.Event() for t in tenants}
    sub = await nc.subscribe("tgqr.evt.*")

    async def watch() -> None:
        async for msg in sub.messages:
            tenant = msg.subject.rsplit(".", 1)[1]
            if b'"type":"QrIssued"' in msg.data and tenant in issued:
                issued[tenant].set()
            if b'"type":"Authorized"' in msg.data and tenant in authorized:
                authorized[tenant].set()

    async def one(i: int, tenant: str) -> None:
        await _ask(nc, f"tgqr.cmd.{tenant}.start", {})
        await issued[tenant].wait()
        await _ask(nc, "tgqr.sim.scan", {"tenant": tenant, "user_id": 5000 + i})
        await authorized[tenant].wait()

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            async with anyio.create_task_group() as logins:
                for i, tenant in enumerate(tenants):
                    logins.start_soon(one, i, tenant)
            tg.cancel_scope.cancel()
    await sub.unsubscribe()


async def _leases(nc: Client, tenants: list[str], rounds: int) -> dict[str, float | int]:
    """Lease, renew and release each tenant's session ``rounds`` times per suite, the suites
    interleaved (a tenant's log grows with every lease: both suites see the same lengths)."""
    lease: dict[str, list[float]] = {suite: [] for suite in _SUITES}
    app_work: dict[str, list[float]] = {suite: [] for suite in _SUITES}
    renew: list[float] = []
    for _ in range(rounds):
        for suite in _SUITES:
            for tenant in tenants:
                began = time.perf_counter()
                keys = KeyPair.generate(suite)
                body = {
                    "holder": "bench",
                    "public_key": base64.b64encode(keys.public_key).decode(),
                    "suite": suite,
                    "ttl_s": 60,
                }
                keyed = time.perf_counter()
                reply = await _ask(nc, f"tgqr.session.{tenant}.lease", body)
                replied = time.perf_counter()
                info = lease_info(tenant, reply["lease_id"], int(reply["fence"]))
                keys.open(base64.b64decode(reply["sealed"]), info)
                info = proof_info(tenant, reply["lease_id"], int(reply["fence"]))
                proof = keys.open(base64.b64decode(reply["proof_sealed"]), info)
                app_work[suite].append((keyed - began) + (time.perf_counter() - replied))
                lease[suite].append(replied - keyed)
                lease_id = {
                    "lease_id": reply["lease_id"],
                    "proof": base64.b64encode(proof).decode(),
                }
                renewing = time.perf_counter()
                await _ask(nc, f"tgqr.session.{tenant}.renew", lease_id)
                renew.append(time.perf_counter() - renewing)
                await _ask(nc, f"tgqr.session.{tenant}.release", lease_id)
    ms = 1000.0
    figures: dict[str, float | int] = {}
    for suite in _SUITES:
        figures |= {
            f"{suite}_leases": len(lease[suite]),
            f"{suite}_p50_ms": round(_percentile(lease[suite], 0.50) * ms, 2),
            f"{suite}_p99_ms": round(_percentile(lease[suite], 0.99) * ms, 2),
            f"{suite}_max_ms": round(max(lease[suite]) * ms, 2),
            f"{suite}_app_keygen_open_p50_ms": round(_percentile(app_work[suite], 0.5) * ms, 3),
        }
    return figures | {
        "renew_p50_ms": round(_percentile(renew, 0.50) * ms, 2),
        "renew_p99_ms": round(_percentile(renew, 0.99) * ms, 2),
    }


async def _run(tenant_count: int, rounds: int) -> dict[str, float | int]:
    tenants = [f"lease{i}" for i in range(tenant_count)]
    with nats_server() as server, tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
        env |= {"TGQR_LOG_LEVEL": "ERROR", "TGQR_THROTTLE_MS": "0-0", "TGQR_HTTP": "off"}
        child = subprocess.Popen(
            [sys.executable, "-m", "actors.cli", "up", "--nats", server.url, "--data", data],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            assert child.stdout is not None
            with anyio.fail_after(60):
                while not (await anyio.to_thread.run_sync(child.stdout.readline)).startswith(
                    b"tgqr up:"
                ):
                    pass
            nc = await nats.connect(server.url)
            await _log_in(nc, tenants)
            figures: dict[str, float | int] = {"tenants": tenant_count}
            await _leases(nc, tenants[:2], 1)  # warm-up, not counted
            figures |= await _leases(nc, tenants, rounds)
            await nc.drain()
        finally:
            child.terminate()
            child.wait(10)
    return figures


def main() -> None:
    parser = bench_args(__doc__ or "")
    parser.add_argument("--tenants", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5, help="leases per tenant and suite")
    args = parser.parse_args()
    figures = anyio.run(_run, args.tenants, args.rounds)
    report("session lease latency (request -> reply)", figures, as_json=args.json)


if __name__ == "__main__":
    main()
