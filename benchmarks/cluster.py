"""Several instances on the local 3-node cluster (``tgqr cluster``): command latency and
logins per second with 1 and with 3 instances, and the failover time (median of rounds).

    python -m benchmarks.cluster [--json] [--rate 10] [--seconds 5] [--logins 20] [--rounds 5]

Each configuration runs ``tgqr cluster --free-ports --instances N`` in a temporary directory:
three nats-servers (R3, ``sync_interval: always``), the shared simulator and N instances,
all on this machine's cores. The client is role ``app`` on node 2, following the log's mirror.

- commands: ``start`` for distinct tenants at ``--rate`` a second for ``--seconds``; latency
  from the request to its reply (the command's first event stored, R3). Every one of those
  logins then dials the simulator, whose key exchanges (~0.15 s of CPU each, one process) set
  the pace of everything after: the next phase waits until each has its QR.
- logins: ``--logins`` tenants started at once, each scanned as soon as its QR is stored; the
  time until every one is ``Authorized``.
- failover (3 instances): per round, 12 tenants mid-login; SIGKILL the instance that owns most
  of them; the time until the last of its tenants has a QR from another instance; the killed
  instance is then started again with its own command line for the next round.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from actors.service import connect_nats, resolve_auth
from events import FENCE_HEADER
from events.jetstream import STREAM

from ._common import bench_args, report

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Feed:
    """Events from the mirror: per tenant (type, writer instance, arrival)."""

    events: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    changed: anyio.Event = field(default_factory=anyio.Event)

    async def deliver(self, msg: Msg) -> None:
        tenant = msg.subject.rsplit(".", 1)[1]
        writer = (msg.headers or {}).get(FENCE_HEADER, "").split("-")[0]
        kind = json.loads(msg.data)["type"]
        self.events.setdefault(tenant, []).append((kind, writer, time.monotonic()))
        self.changed.set()
        self.changed = anyio.Event()

    async def until(self, done: object, within_s: float = 120) -> None:
        with anyio.fail_after(within_s):
            while not done():  # type: ignore[operator]
                await self.changed.wait()

    def has(self, tenant: str, kind: str, after: float = 0.0) -> bool:
        return any(k == kind and at > after for k, _, at in self.events.get(tenant, []))


@asynccontextmanager
async def cluster(instances: int) -> AsyncIterator[tuple[Client, Feed, Path]]:
    with tempfile.TemporaryDirectory(prefix="tgqr-bench-cluster-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
        process = subprocess.Popen(
            [sys.executable, "-m", "actors.cli", "cluster", "--free-ports", "--throttle", "0-0",
             "--instances", str(instances), "--data", tmp],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            line = (await anyio.to_thread.run_sync(process.stdout.readline)).decode()
            urls = line.split("nodes ", 1)[1].split(";", 1)[0].split(",")
            root = Path(tmp) / "cluster"
            auth = resolve_auth("app", data_dir=root, urls=urls[1:], env={})
            app = await connect_nats(urls[1:], auth=auth, reconnect=True)
            feed = Feed()
            await app.jetstream(timeout=5).subscribe(
                "tgqr.evt.*", stream=STREAM, cb=feed.deliver, ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.NEW,
            )  # fmt: skip
            await ask(app, "tgqr.cmd.warmup.start", {})
            await settled(root, urls, instances)
            yield app, feed, root
            await app.close()
        finally:
            process.send_signal(signal.SIGINT)
            await anyio.to_thread.run_sync(process.wait)
            process.stdout.close()


async def settled(root: Path, urls: list[str], instances: int) -> None:
    """Until every partition has a live owner and ``instances`` instances own some, unchanged
    for a second (read as role service from the owners bucket): the instances that joined
    after the first have taken their share, so no hand-over runs while measuring."""
    auth = resolve_auth("service", data_dir=root, urls=urls, env={})
    nc = await connect_nats(urls, auth=auth, reconnect=True)
    js = nc.jetstream(timeout=5)
    last: dict[str, bytes] = {}
    stable_since = time.monotonic()
    try:
        with anyio.fail_after(120):
            while True:
                info = await js.stream_info("KV_tgqr_owners", subjects_filter="$KV.tgqr_owners.>")
                subjects = sorted(info.state.subjects or {})
                values = {}
                for subject in subjects:
                    msg = await js.get_last_msg("KV_tgqr_owners", subject)
                    values[subject] = msg.data or b""
                members = {s.rsplit(".", 1)[1] for s in subjects if ".m." in s}
                owners = {v.decode() for k, v in values.items() if ".p." in k}
                if values != last:
                    last, stable_since = values, time.monotonic()
                elif owners <= members and len(owners) == instances:  # noqa: SIM102
                    if time.monotonic() - stable_since >= 1.0:
                        return
                await anyio.sleep(0.25)  # a poll of another process's state
    finally:
        await nc.close()


async def ask(app: Client, subject: str, body: dict[str, object]) -> float:
    """Seconds until a reply other than ``unavailable`` (retried after its ``retry_after_s``)."""
    started = time.monotonic()
    while True:
        try:
            msg = await app.request(subject, json.dumps(body).encode(), timeout=20)
        except nats.errors.TimeoutError:
            continue
        reply = json.loads(msg.data)
        error = reply.get("error") or {}
        if error.get("code") != "unavailable":
            return time.monotonic() - started
        await anyio.sleep(float(error.get("retry_after_s") or 0.5))


async def commands(app: Client, rate: float, seconds: float, prefix: str) -> list[float]:
    latencies: list[float] = []

    async def one(tenant: str) -> None:
        latencies.append(await ask(app, f"tgqr.cmd.{tenant}.start", {}))

    async with anyio.create_task_group() as tg:
        start = time.monotonic()
        for n in range(int(rate * seconds)):
            await anyio.sleep(max(0.0, start + n / rate - time.monotonic()))
            tg.start_soon(one, f"{prefix}{n}")
    return latencies


async def qrs_shown(feed: Feed, tenants: list[str]) -> None:
    await feed.until(lambda: all(feed.has(t, "QrIssued") for t in tenants), 300)


async def logins(app: Client, feed: Feed, count: int, prefix: str) -> float:
    tenants = [f"{prefix}{n}" for n in range(count)]
    started = time.monotonic()

    async def one(n: int, tenant: str) -> None:
        await ask(app, f"tgqr.cmd.{tenant}.start", {})
        await feed.until(lambda: feed.has(tenant, "QrIssued"))
        await ask(app, "tgqr.sim.scan", {"tenant": tenant, "user_id": 50_000 + n})

    async with anyio.create_task_group() as tg:
        for n, tenant in enumerate(tenants):
            tg.start_soon(one, n, tenant)
    await feed.until(lambda: all(feed.has(t, "Authorized") for t in tenants), within_s=120)
    return count / (time.monotonic() - started)


def instance_process(root: Path, name: str) -> tuple[int, list[str], dict[str, str]]:
    """The pid, command line and environment of instance ``name`` of the cluster."""
    needle = str(root / name).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"up" in argv and needle in argv:
            raw = (proc / "environ").read_bytes().split(b"\0")
            env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
            return int(proc.name), [a.decode() for a in argv if a], env
    raise LookupError(name)


def restart(argv: list[str], env: dict[str, str], log_path: Path) -> None:
    """Start a killed instance again; return once it has claimed its share back (its output
    is then copied on to its log by a thread of its own)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert process.stdout is not None
    claimed = threading.Event()

    def copy() -> None:
        assert process.stdout is not None
        with log_path.open("ab") as log:
            for line in process.stdout:
                log.write(line)
                if b"claimed partitions" in line:
                    claimed.set()
        claimed.set()

    threading.Thread(target=copy, daemon=True, name="bench-instance").start()
    claimed.wait(60)


async def failover(app: Client, feed: Feed, root: Path, round_: int) -> float:
    tenants = [f"fo{round_}-{n}" for n in range(12)]
    async with anyio.create_task_group() as tg:
        for tenant in tenants:
            tg.start_soon(ask, app, f"tgqr.cmd.{tenant}.start", {})
    await feed.until(lambda: all(feed.has(t, "QrIssued") for t in tenants))
    owner = {t: feed.events[t][-1][1] for t in tenants}
    victim = max(sorted(set(owner.values())), key=list(owner.values()).count)
    pid, argv, env = instance_process(root, victim)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    orphans = [t for t in tenants if owner[t] == victim]

    def moved(tenant: str) -> bool:
        return any(kind == "QrIssued" and at > killed and writer != victim
                   for kind, writer, at in feed.events[tenant])  # fmt: skip

    await feed.until(lambda: all(moved(t) for t in orphans))
    took = (
        max(
            min(at for kind, writer, at in feed.events[t] if at > killed and writer != victim)
            for t in orphans
        )
        - killed
    )
    await anyio.to_thread.run_sync(restart, argv, env, root / "logs" / f"{victim}.log")
    return took


async def run(rate: float, seconds: float, count: int, rounds: int) -> dict[str, float | int]:
    figures: dict[str, float | int] = {}
    for instances in (1, 3):
        async with cluster(instances) as (app, feed, root):
            prefix = f"c{instances}-"
            latencies = sorted(await commands(app, rate, seconds, prefix))
            await qrs_shown(feed, [f"{prefix}{n}" for n in range(int(rate * seconds))])
            figures[f"cmd_p50_ms_{instances}"] = round(statistics.median(latencies) * 1000, 1)
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            figures[f"cmd_p99_ms_{instances}"] = round(p99 * 1000, 1)
            figures[f"logins_per_s_{instances}"] = round(
                await logins(app, feed, count, f"l{instances}-"), 2
            )
            if instances == 3:
                times = []
                for round_ in range(rounds):
                    times.append(await failover(app, feed, root, round_))
                    await ask(app, f"tgqr.cmd.settle{round_}.start", {})
                figures["failover_s_median"] = round(statistics.median(times), 2)
                figures["failover_s_max"] = round(max(times), 2)
            for name in ("i1", "i2", "i3"):  # instances restarted by failover()
                try:
                    pid, _, _ = instance_process(root, name)
                except LookupError:
                    continue
                os.kill(pid, signal.SIGTERM)
    return figures


def main() -> None:
    parser = bench_args(__doc__ or "")
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = anyio.run(run, args.rate, args.seconds, args.logins, args.rounds)
    report("several instances on a local 3-node cluster", figures, as_json=args.json)


if __name__ == "__main__":
    main()
