"""Three instances on a 3-node cluster, tenants mid-login, and the faults an operator meets.

- SIGKILL an instance: its tenants get new QRs from another instance within 5 s (the
  ownership TTL of 3 s plus a claim and a resume) and finish their logins.
- SIGKILL the node that leads the event stream: every event stored before is still there, and
  the logins go on through the election.
- A rolling restart (SIGTERM, start) of every instance: no login is lost.

After each: the whole log verifies (no chain breaks, so no fork of any tenant's chain), and
no tenant had two actors: every append carries its writer's fence (``Tgqr-Fence``: instance,
partition, the revision of the claim), and along each tenant's chain the fences never go
back. A stale owner writing after a newer owner claimed the partition would be an event with
a smaller fence after a larger one; OCC would also have refused it unless it came first.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from actors.service import ROLES, Role, connect_nats, load_chain_key, resolve_auth
from events import FENCE_HEADER
from events.audit import audit_verify
from events.jetstream import STREAM, JetStreamEventLog
from tests.actors.service.test_cluster_boundary import readme_cluster

from ._cluster import Cluster
from ._instances import Fleet

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

FAILOVER_S = 5.0
TENANTS = 30


@dataclass
class Seen:
    """Events as the service's account sees them published (live, so with arrival times)."""

    events: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    _arrived: anyio.Event = field(default_factory=anyio.Event)

    async def deliver(self, msg: Msg) -> None:
        if not msg.data:
            return
        tenant = msg.subject.rsplit(".", 1)[1]
        kind = json.loads(msg.data).get("type", "")
        fence = (msg.headers or {}).get(FENCE_HEADER, "")
        self.events.setdefault(tenant, []).append((kind, fence, time.monotonic()))
        self._arrived.set()
        self._arrived = anyio.Event()

    async def until(self, done: Callable[[], bool], within_s: float = 30) -> None:
        with anyio.fail_after(within_s):
            while not done():
                await self._arrived.wait()

    def has(self, tenant: str, kind: str) -> bool:
        return any(k == kind for k, _, _ in self.events.get(tenant, []))

    def owner(self, tenant: str) -> str:
        """The instance (``iN``) that wrote the tenant's last event."""
        return self.events[tenant][-1][1].split("-")[0]


@dataclass
class Setup:
    cluster: Cluster
    fleet: Fleet
    passwords: dict[Role, str]
    root: Path

    def url(self, role: Role, node: int) -> str:
        return self.cluster.urls[node].replace("nats://", f"nats://{role}:{self.passwords[role]}@")

    async def connect(self, role: Role) -> Client:
        urls = [self.url(role, n) for n in range(3)]
        auth = resolve_auth(role, data_dir=self.root / "empty", urls=urls, env={})
        return await connect_nats(urls, auth=auth, reconnect=True)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    passwords: dict[Role, str] = {role: secrets.token_urlsafe(24) for role in ROLES}
    async with readme_cluster(tmp_path / "cluster", passwords, "always") as (cluster, service):
        urls = ",".join(service)
        fleet = Fleet(urls, tmp_path / "fleet")
        try:
            await fleet.start()
            yield Setup(cluster, fleet, passwords, tmp_path)
        finally:
            fleet.close()


async def ask(nc: Client, subject: str, body: dict[str, object]) -> dict[str, object]:
    """A request, retried while the answer is ``unavailable`` (a hand-over, an election)."""
    with anyio.fail_after(40):
        while True:
            try:
                msg = await nc.request(subject, json.dumps(body).encode(), timeout=15)
            except nats.errors.TimeoutError:
                continue
            reply: dict[str, object] = json.loads(msg.data)
            error = reply.get("error")
            if isinstance(error, dict) and error.get("code") == "unavailable":
                await anyio.sleep(float(error.get("retry_after_s") or 0.5))
                continue
            return reply


async def start_all(app: Client, seen: Seen, tenants: list[str]) -> None:
    async with anyio.create_task_group() as tg:
        for tenant in tenants:
            tg.start_soon(ask, app, f"tgqr.cmd.{tenant}.start", {})
    await seen.until(lambda: all(seen.has(t, "QrIssued") for t in tenants))


async def scan(app: Client, tenant: str, user_id: int) -> None:
    reply = await ask(app, "tgqr.sim.scan", {"tenant": tenant, "user_id": user_id})
    assert reply.get("ok"), (tenant, reply)


async def scan_all(app: Client, seen: Seen, tenants: list[str], first_user: int) -> None:
    async with anyio.create_task_group() as tg:
        for n, tenant in enumerate(tenants):
            tg.start_soon(scan, app, tenant, first_user + n)
    try:
        await seen.until(lambda: all(seen.has(t, "Authorized") for t in tenants), within_s=60)
    except TimeoutError:
        for tenant in tenants:
            if not seen.has(tenant, "Authorized"):
                print(tenant, [(k, f) for k, f, _ in seen.events.get(tenant, [])])
        raise


async def stored(service: Client) -> dict[int, tuple[str, str, str]]:
    """Every message of the log: sequence -> (subject, Nats-Msg-Id, fence)."""
    js = service.jetstream(timeout=5)
    last = (await js.stream_info(STREAM)).state.last_seq
    out: dict[int, tuple[str, str, str]] = {}
    seq = 1
    while seq <= last:
        msg = await js.get_msg(STREAM, seq=seq, subject="tgqr.evt.*", next=True)
        headers = msg.headers or {}
        out[int(msg.seq or 0)] = (
            msg.subject or "",
            headers.get("Nats-Msg-Id", ""),
            headers.get(FENCE_HEADER, ""),
        )
        seq = int(msg.seq or 0) + 1
    return out


async def assert_sound(service: Client, root: Path) -> None:
    """The log verifies, and along every tenant's chain the writers' fences never go back."""
    key = load_chain_key(root / "fleet" / "keys", create=False)
    report = await audit_verify(JetStreamEventLog(service.jetstream(timeout=10), key), key)
    assert report.ok, report
    last: dict[str, int] = {}
    for subject, _, fence in (await stored(service)).values():
        if not fence:
            assert subject.startswith("tgqr.evt._"), subject  # only the service's own chains
            continue
        number = int(fence.rsplit("/", 1)[1])
        assert number >= last.get(subject, 0), f"{subject}: two actors ({fence})"
        last[subject] = number


async def test_instance_kill_node_kill_and_rolling_restart(setup: Setup) -> None:
    service = await setup.connect("service")
    app = await setup.connect("app")
    seen = Seen()
    # An ordered consumer, not a core subscription: it goes on from the last message it
    # delivered when its connection moves to another node, so no stored event is missed.
    await service.jetstream(timeout=5).subscribe(
        "tgqr.evt.*",
        stream=STREAM,
        cb=seen.deliver,
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.NEW,
    )

    # 1. SIGKILL the instance owning the most tenants mid-login.
    first = [f"kill-{n:02d}" for n in range(TENANTS)]
    await start_all(app, seen, first)
    owners = {tenant: seen.owner(tenant) for tenant in first}
    victim = max(sorted(set(owners.values())), key=list(owners.values()).count)
    orphans = [t for t in first if owners[t] == victim]
    killed_at = time.monotonic()
    setup.fleet.instances[int(victim[1:]) - 1].kill()
    print(f"killed {victim} at {time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}")

    def moved(tenant: str) -> bool:
        return any(kind == "QrIssued" and not fence.startswith(f"{victim}-") and at > killed_at
                   for kind, fence, at in seen.events[tenant])  # fmt: skip

    await seen.until(lambda: all(moved(t) for t in orphans), within_s=20)
    failover = (
        max(
            min(at for kind, fence, at in seen.events[t] if at > killed_at and kind == "QrIssued")
            for t in orphans
        )
        - killed_at
    )
    print(f"failover: {len(orphans)} tenants of {victim} had new QRs after {failover:.2f}s")
    assert failover <= FAILOVER_S
    await scan_all(app, seen, first, 1000)
    setup.fleet.instances[int(victim[1:]) - 1].start()  # rejoins: takes its share back
    await setup.fleet.instances[int(victim[1:]) - 1].ready()
    await assert_sound(service, setup.root)

    # 2. SIGKILL the node leading the event stream mid-login.
    second = [f"node-{n:02d}" for n in range(TENANTS)]
    await start_all(app, seen, second)
    before = await stored(service)
    leader = await setup.cluster.stream_leader(STREAM)
    assert leader is not None
    setup.cluster.kill(leader)
    await scan_all(app, seen, second, 2000)
    after = await stored(service)
    lost = {seq: message for seq, message in before.items() if after.get(seq) != message}
    assert not lost, f"{len(lost)} acknowledged events lost"
    print(f"node kill: {leader} led {STREAM}; {len(before)} events kept, 0 lost")
    setup.cluster.restart(leader)
    await assert_sound(service, setup.root)

    # 3. Rolling restart of every instance mid-login.
    third = [f"roll-{n:02d}" for n in range(TENANTS)]
    await start_all(app, seen, third)
    for child in setup.fleet.instances:
        child.stop()
        child.start()
        await child.ready()
    await scan_all(app, seen, third, 3000)
    await assert_sound(service, setup.root)
    await app.close()
    await service.close()
