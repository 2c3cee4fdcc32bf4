"""QR logins through the real Telethon adapter against the simulator, in one process.

N concurrent logins (default 100): each opens a client (MTProto auth-key exchange over
loopback TCP), exports a token, the simulated phone scans it, the client sees
``updateLoginToken`` and exports again to get ``LoginTokenSuccess``.

    python -m benchmarks.telegram [--json] [--logins N]
"""

from __future__ import annotations

import statistics
import time

import anyio

from actors.sim import Simulator
from actors.telegram import LoginSuccess, LoginToken, TelethonTelegram

from ._common import bench_args, report


async def _login(
    port: TelethonTelegram, sim: Simulator, index: int, latencies: list[float]
) -> None:
    started = time.perf_counter()
    async with port.open_client(f"bench-{index}") as client:
        token = await client.export_token()
        if not isinstance(token, LoginToken):
            raise TypeError(f"expected a token, got {token!r}")
        sim.scan(url=token.url, user_id=10_000 + index)
        await client.wait_scanned()
        result = await client.export_token()
        if not isinstance(result, LoginSuccess):
            raise TypeError(f"expected a login, got {result!r}")
    latencies.append(time.perf_counter() - started)


async def run(logins: int) -> dict[str, float | int | str]:
    sim = Simulator()
    latencies: list[float] = []
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        # Every connect creates an auth key (RSA + 2048-bit DH on both sides, all on this one
        # event loop): under 100 at once a connect waits its turn for the CPU.
        port = TelethonTelegram.for_simulator(sim, request_timeout=300)
        started = time.perf_counter()
        with anyio.fail_after(300):
            async with anyio.create_task_group() as logins_tg:
                for index in range(logins):
                    logins_tg.start_soon(_login, port, sim, index, latencies)
        total = time.perf_counter() - started
        open_after = sim.statistics().open_connections
        tg.cancel_scope.cancel()
    latencies.sort()
    return {
        "logins": logins,
        "total_s": round(total, 3),
        "sim_logins_per_s": round(logins / total, 1),
        "login_p50_s": round(statistics.median(latencies), 3),
        "login_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
        "open_connections_after": open_after,
    }


def main() -> None:
    parser = bench_args(__doc__ or "")
    parser.add_argument("--logins", type=int, default=100)
    args = parser.parse_args()
    figures = anyio.run(run, args.logins)
    report("Telethon + simulator QR logins", figures, as_json=args.json)


if __name__ == "__main__":
    main()
