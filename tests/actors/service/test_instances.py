"""Two instances on one nats-server (in-process, one simulator): each tenant has one owner,
commands reach it from either, and a leaving instance's tenants resume on the other.

The process-level faults (SIGKILL, a node of a 3-node cluster, rolling restarts) are in
tests/actors/cli/test_cluster_faults.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from actors.ownership import FENCE_HEADER, OwnershipSettings
from actors.service import NatsServer, RunningService, ServiceConfig, load_chain_key, run_service
from actors.sim import Simulator
from actors.vault import load_key_ring
from events.jetstream import STREAM

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PARTITIONS = 8
SETTINGS = OwnershipSettings(partitions=PARTITIONS, ttl_s=2, margin_s=0.5, settle_s=0.5)


def config_for(tmp_path: Path, name: str, url: str) -> ServiceConfig:
    data = tmp_path / name
    base = ServiceConfig.from_env({}, data_dir=data, nats=url)
    return replace(
        base, throttle_s=(0.0, 0.0), http=None, metrics=None, ownership=SETTINGS, instance=name
    )


def share_keys(first: Path, *others: Path) -> None:
    """Every instance holds the same chain and vault keys (README, "Running more than one")."""
    first.mkdir(mode=0o700, parents=True, exist_ok=True)
    load_chain_key(first, create=True)
    load_key_ring(first, create=True)
    for other in others:
        other.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in ("chain.key", "vault.key"):
            shutil.copy2(first / name, other / name)


@asynccontextmanager
async def instance(config: ServiceConfig, sim: Simulator) -> AsyncIterator[RunningService]:
    async with anyio.create_task_group() as tg:
        running: RunningService = await tg.start(
            lambda task_status: run_service(config, sim=sim, task_status=task_status)
        )
        try:
            yield running
        finally:
            tg.cancel_scope.cancel()


def held(running: RunningService) -> set[int]:
    assert running.ownership is not None
    return set(running.ownership.view.held)


async def until_split(*services: RunningService) -> None:
    """Until every partition is held by exactly one of ``services``, each holding some."""
    with anyio.fail_after(15):
        while True:
            shares = [held(s) for s in services]
            union = set().union(*shares)
            whole = union == set(range(PARTITIONS)) and sum(map(len, shares)) == PARTITIONS
            if whole and all(shares):
                return
            assert services[0].ownership is not None
            with anyio.move_on_after(1):  # also re-checks after the others' changes
                await services[0].ownership.changed()


async def request(nc: Client, subject: str, body: dict[str, object]) -> dict[str, object]:
    msg = await nc.request(subject, json.dumps(body).encode(), timeout=20)
    reply: dict[str, object] = json.loads(msg.data)
    return reply


async def fences(nc: Client, tenant: str) -> list[tuple[str, str]]:
    """(event type, fence header) of each stored event of ``tenant``."""
    js = nc.jetstream(timeout=5)
    out: list[tuple[str, str]] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(STREAM, seq=seq, subject=f"tgqr.evt.{tenant}", next=True)
        except nats.js.errors.NotFoundError:
            return out
        out.append(
            (json.loads(msg.data or b"{}")["type"], (msg.headers or {}).get(FENCE_HEADER, ""))
        )
        seq = (msg.seq or 0) + 1


class Seen:
    """Every event published on the (open) server, by tenant, as it is stored."""

    def __init__(self) -> None:
        self.kinds: dict[str, list[str]] = {}
        self._arrived = anyio.Event()

    async def deliver(self, msg: Msg) -> None:
        tenant = msg.subject.rsplit(".", 1)[1]
        if not msg.data:
            return  # not an event (an acknowledgement on the same subject space)
        self.kinds.setdefault(tenant, []).append(json.loads(msg.data)["type"])
        self._arrived.set()
        self._arrived = anyio.Event()

    async def until(self, done: Callable[[], bool]) -> None:
        with anyio.fail_after(10):
            while not done():
                await self._arrived.wait()

    def count(self, tenant: str, kind: str) -> int:
        return self.kinds.get(tenant, []).count(kind)


async def test_two_instances_share_the_tenants_and_hand_over(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    share_keys(tmp_path / "one", tmp_path / "two")
    first = config_for(tmp_path, "one", nats_server.url)
    second = config_for(tmp_path, "two", nats_server.url)
    tenants = [f"t{n}" for n in range(24)]
    async with anyio.create_task_group() as tg:
        sim = Simulator(token_ttl_s=600, store=tmp_path / "sim")
        await tg.start(sim.run)
        nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
        seen = Seen()
        await nc.subscribe("tgqr.evt.*", cb=seen.deliver)
        async with instance(first, sim) as one:
            assert held(one) == set(range(PARTITIONS))
            async with instance(second, sim) as two:
                await until_split(one, two)
                assert one.ownership is not None and two.ownership is not None
                for tenant in tenants:  # through the queue group: about half land elsewhere
                    assert (await request(nc, f"tgqr.cmd.{tenant}.start", {}))["ok"]
                for tenant in tenants:
                    owner = one if one.ownership.holds(tenant) else two
                    assert owner.ownership is not None
                    stored = await fences(nc, tenant)
                    assert [kind for kind, _ in stored][:1] == ["LoginStarted"]
                    # every event was written by the owner, under its fence
                    assert {fence.split(" ")[0] for _, fence in stored} == {owner.ownership.me}
                mine = [t for t in tenants if two.ownership.holds(t)]
                assert mine
                before = {t: seen.count(t, "QrIssued") for t in mine}
            # `two` left (released its partitions): `one` takes them and resumes their logins
            with anyio.fail_after(10):
                while held(one) != set(range(PARTITIONS)):
                    await one.ownership.changed()
            await seen.until(lambda: all(seen.count(t, "QrIssued") > before[t] for t in mine))
            moved = mine[0]
            assert (await request(nc, "tgqr.sim.scan", {"tenant": moved, "user_id": 7}))["ok"]
            await seen.until(lambda: seen.count(moved, "Authorized") == 1)
            assert {f.split(" ")[0] for _, f in (await fences(nc, moved))[-2:]} == {
                one.ownership.me
            }
        await nc.close()
        tg.cancel_scope.cancel()


async def test_a_scan_while_no_instance_runs_the_tenant_still_logs_it_in(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The key that exported a QR is kept (sealed in the vault) before the QR is shown: the
    phone scans it while the tenant has no actor at all, and the next instance to own the
    tenant reconnects with that key and finds the login accepted, without a new scan."""
    share_keys(tmp_path / "one", tmp_path / "two")
    async with anyio.create_task_group() as tg:
        sim = Simulator(token_ttl_s=600, store=tmp_path / "sim")
        await tg.start(sim.run)
        nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
        seen = Seen()
        await nc.subscribe("tgqr.evt.*", cb=seen.deliver)
        async with instance(config_for(tmp_path, "one", nats_server.url), sim):
            assert (await request(nc, "tgqr.cmd.alice.start", {}))["ok"]
            await seen.until(lambda: seen.count("alice", "QrIssued") == 1)
        qr = [kind for kind, _ in await fences(nc, "alice")]
        assert qr[-1] == "QrIssued"
        js = nc.jetstream(timeout=5)
        last = await js.get_last_msg(STREAM, "tgqr.evt.alice")
        sim.scan(user_id=42, url=json.loads(last.data or b"{}")["url"])  # no actor holds alice
        async with instance(config_for(tmp_path, "two", nats_server.url), sim):
            await seen.until(lambda: seen.count("alice", "Authorized") == 1)
        assert seen.count("alice", "QrIssued") == 1  # no second QR was needed
        await nc.close()
        tg.cancel_scope.cancel()
