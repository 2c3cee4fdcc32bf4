"""Appends and KV writes ride out the loss of their stream's leader on a 3-node R3 cluster.

A writer appends continuously through :class:`JetStreamEventLog` while another task advances a
compare-and-set counter in a KV bucket through :class:`RetryingKv`; the node leading both streams
is SIGKILLed. The election is timed from the kill to JetStream's "leader elected" advisory of
each stream; the stall is the longest gap between two acknowledged operations. Every
acknowledged append must be in the log exactly once, in order, and the counter must hold the
last acknowledged value at the last acknowledged revision.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from events import ChainKey, Head, Scanned
from events.jetstream import JetStreamEventLog, ensure_stream
from events.jskv import RetryingKv
from events.jsstorage import STREAM, bucket_stream, ensure_bucket
from events.storage import StoragePolicy
from tests.actors.cli._cluster import Cluster, running_cluster

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

KEY = ChainKey(b"election-test-key-0123456789abcd")
BUCKET = "tgqr_election"
AT = datetime(2026, 1, 1, tzinfo=UTC)
AFTER_ELECTION = 10
"""Acknowledged operations each writer makes after the election before it stops."""
WARM = 20
"""Acknowledged operations of each writer before the kill."""


@dataclass
class Writer:
    """Times of acknowledged operations, and what was acknowledged."""

    acked_at: list[float] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    warm: anyio.Event = field(default_factory=anyio.Event)

    def ack(self, what: str) -> None:
        self.acked_at.append(time.monotonic())
        self.acked.append(what)
        if len(self.acked) >= WARM:
            self.warm.set()

    def stall(self) -> float:
        gaps = [b - a for a, b in zip(self.acked_at, self.acked_at[1:], strict=False)]
        return max(gaps, default=0.0)


async def _leader_elected(nc: Client, stream: str, elected: dict[str, tuple[float, str]]) -> None:
    """Records the time and leader of the first election of ``stream`` it sees (subscribe
    before the kill: the advisory is the moment a new leader took over)."""
    subject = f"$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.{stream}"
    sub = await nc.subscribe(subject)
    try:
        msg: Msg = await sub.next_msg(timeout=25)
        elected[stream] = (time.monotonic(), json.loads(msg.data)["leader"])
    finally:
        await sub.unsubscribe()


async def _move_leader(nc: Client, stream: str, to: str) -> None:
    """Ask ``stream``'s leader to hand over to node ``to`` (a no-op when it leads already)."""
    body = json.dumps({"placement": {"preferred": to}}).encode()
    reply = await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", body, timeout=5)
    error = json.loads(reply.data).get("error")
    assert error is None or "already leader" in error.get("description", ""), error


async def _wait_leader(cluster: Cluster, stream: str, name: str | None = None) -> str:
    """Until ``stream`` has a leader (``name``, if given): JetStream elects on its own time."""
    with anyio.fail_after(15):
        while True:
            leader = await cluster.stream_leader(stream)
            if leader is not None and name in {None, leader}:
                return leader
            await anyio.sleep(0.05)  # polling the server's state: nothing to wait on


async def test_appends_and_kv_writes_ride_out_a_leader_kill(tmp_path: Path) -> None:
    """SIGKILL of the node leading the event stream and the bucket: each writer stalls at most
    the election plus 1.5 s, and nothing acknowledged is lost or stored twice."""
    with running_cluster(tmp_path / "cluster", jetstream=True, sync_interval="always") as cluster:
        await cluster.jetstream_ready()
        admin = await cluster.connect(cluster.urls[0])
        js = admin.jetstream(timeout=5)
        await ensure_stream(js, replicas=3)
        await ensure_bucket(
            js,
            BUCKET,
            limits=StoragePolicy().leases,
            env_name="-",
            description="election test",
            replicas=3,
        )
        leader = await _wait_leader(cluster, STREAM)
        await _move_leader(admin, bucket_stream(BUCKET), leader)
        await _wait_leader(cluster, bucket_stream(BUCKET), leader)
        survivor = next(n for n in cluster.nodes if n.name != leader)
        # The writers' node survives (a client of the dead node would first reconnect).
        nc = await cluster.connect(survivor.url)
        watcher = await cluster.connect(survivor.url)
        wjs = nc.jetstream(timeout=10)  # as the service makes it
        log = JetStreamEventLog(wjs, KEY)
        kv = RetryingKv(await wjs.key_value(BUCKET), BUCKET)
        appends, writes = Writer(), Writer()
        elected: dict[str, tuple[float, str]] = {}
        kill_at = 0.0

        def done(writer: Writer) -> bool:
            if len(elected) < 2:
                return False
            last_election = max(at for at, _ in elected.values())
            return sum(t > last_election for t in writer.acked_at) >= AFTER_ELECTION

        async def append() -> None:
            head = Head()
            while not done(appends):
                event = Scanned(tenant="alice", attempt=1, at=AT)
                head = await log.append("alice", [event], head)
                appends.ack(str(head.seq))

        async def count() -> None:
            revision = await kv.create("counter", b"0")
            n = 0
            while not done(writes):
                revision = await kv.update("counter", str(n + 1).encode(), last=revision)
                n += 1
                writes.ack(f"{n}@{revision}")

        async def kill_when_busy() -> None:
            nonlocal kill_at
            with anyio.fail_after(10):
                await appends.warm.wait()
                await writes.warm.wait()
            kill_at = time.monotonic()
            await anyio.to_thread.run_sync(cluster.kill, leader)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for stream in (STREAM, bucket_stream(BUCKET)):
                    tg.start_soon(_leader_elected, watcher, stream, elected)
                await watcher.flush()
                tg.start_soon(append)
                tg.start_soon(count)
                tg.start_soon(kill_when_busy)

        elections = {s: at - kill_at for s, (at, _) in elected.items()}
        assert all(new != leader for _, new in elected.values())
        report = (
            f"killed {leader}: election {elections[STREAM]:.2f} s (log), "
            f"{elections[bucket_stream(BUCKET)]:.2f} s (bucket); longest stall "
            f"{appends.stall():.2f} s (appends, {len(appends.acked)} acked), "
            f"{writes.stall():.2f} s (KV compare-and-set, {len(writes.acked)} acked)"
        )
        print(report)
        assert appends.stall() <= elections[STREAM] + 1.5, report
        assert writes.stall() <= elections[bucket_stream(BUCKET)] + 1.5, report

        stored = await log.load_tenant("alice")
        assert not stored.bad
        assert [str(r.seq) for r in stored.records] == appends.acked
        assert len({r.event.id for r in stored.records}) == len(appends.acked)
        entry = await kv.get("counter")
        n, revision = writes.acked[-1].split("@")
        assert (entry.value, entry.revision) == (n.encode(), int(revision))
        for client in (nc, watcher, admin):
            await client.close()
