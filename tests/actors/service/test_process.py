"""The service as a process: SIGTERM exits cleanly, SIGKILL loses nothing, NATS restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from nats.aio.client import Client

from actors.service import NatsServer, load_chain_key, read_credentials, start_nats_server
from events.jetstream import JetStreamEventLog
from events.verify import verify_log

from .conftest import stored_events

pytestmark = pytest.mark.anyio


class Up:
    """``tgqr up`` in a child process: against ``url``, or its own embedded nats-server."""

    def __init__(self, url: str | None, data: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
        env |= {"TGQR_THROTTLE_MS": "0-0", "TGQR_LOG_LEVEL": "WARNING", "TGQR_HTTP": "127.0.0.1:0"}
        nats_args = ["--nats", url] if url is not None else []
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "actors.cli", "up", *nats_args, "--data", str(data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parents[3],
        )

    async def ready(self) -> str:
        assert self.proc.stdout is not None
        with anyio.fail_after(30):
            while True:
                line = (await anyio.to_thread.run_sync(self.proc.stdout.readline)).decode()
                if not line:
                    raise AssertionError("tgqr up exited before it was ready")
                if line.startswith("tgqr up:"):
                    return line

    async def wait(self, within_s: float) -> int:
        with anyio.fail_after(within_s):
            return await anyio.to_thread.run_sync(self.proc.wait)

    def output(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def up_factory(nats_server: NatsServer, tmp_path: Path) -> Iterator[Any]:
    started: list[Up] = []

    def make() -> Up:
        up = Up(nats_server.url, tmp_path / "data")
        started.append(up)
        return up

    yield make
    for up in started:
        up.close()


async def request(nc: Client, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    msg = await nc.request(subject, json.dumps(body).encode(), timeout=20)
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


async def until(nc: Client, tenant: str, kind: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait until the tenant's log holds ``count`` events of type ``kind``."""
    sub = await nc.subscribe(f"tgqr.evt.{tenant}")
    try:
        with anyio.fail_after(30):
            while True:
                events = await stored_events(nc, tenant)
                if sum(e["type"] == kind for e in events) >= count:
                    return events
                await sub.next_msg(timeout=None)
    finally:
        await sub.unsubscribe()


async def test_sigterm_exits_cleanly_within_ten_seconds(
    up_factory: Any, nats_server: NatsServer
) -> None:
    """SIGTERM during a live login: exit 0 within 10 s."""
    up = up_factory()
    await up.ready()
    nc = await nats.connect(nats_server.url)
    try:
        assert (await request(nc, "tgqr.cmd.alice.start", {}))["ok"]
        await until(nc, "alice", "QrIssued")
    finally:
        await nc.drain()
    up.proc.send_signal(signal.SIGTERM)
    assert await up.wait(10) == 0
    assert "stopped" in up.output()


async def test_sigkill_mid_login_resumes_without_loss(
    up_factory: Any, nats_server: NatsServer, tmp_path: Path
) -> None:
    """Killed with SIGKILL while pending; the next process resumes: a new QR, then login."""
    first = up_factory()
    await first.ready()
    nc = await nats.connect(nats_server.url)
    try:
        assert (await request(nc, "tgqr.cmd.alice.start", {}))["ok"]
        await until(nc, "alice", "QrIssued")
        pages = children_of(first.proc.pid)
        assert pages, "tgqr up runs its page as a child process"
        first.proc.kill()
        await first.wait(10)
        # Its page process does not outlive it (it would keep the HTTP socket): the lifeline
        # pipe's EOF stops it. Waited on through pidfds: readable once the process is gone.
        with anyio.fail_after(10):
            for pid in pages:
                await gone(pid)

        second = up_factory()
        await second.ready()
        events = await until(nc, "alice", "QrIssued", count=2)
        assert [e["type"] for e in events] == ["LoginStarted", "QrIssued", "QrIssued"]
        assert (await request(nc, "tgqr.sim.scan", {"tenant": "alice", "user_id": 7}))["ok"]
        events = await until(nc, "alice", "Authorized")
        ids = [e["id"] for e in events]
        assert len(ids) == len(set(ids))
        assert [e["type"] for e in events].count("LoginStarted") == 1

        log = JetStreamEventLog(nc.jetstream(), load_chain_key(tmp_path / "data"))
        report = await verify_log(log, load_chain_key(tmp_path / "data"))
        assert report.ok, report.breaks
    finally:
        await nc.drain()


async def test_nats_server_restart_mid_login(up_factory: Any, tmp_path: Path) -> None:
    """nats-server restarted while a login waits for its scan: the login still completes."""
    server = start_nats_server(tmp_path / "own-nats")
    port = int(server.url.rsplit(":", 1)[1])
    up = Up(server.url, tmp_path / "data2")
    try:
        await up.ready()
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        assert (await request(nc, "tgqr.cmd.bob.start", {}))["ok"]
        await until(nc, "bob", "QrIssued")
        server.stop()
        server = start_nats_server(tmp_path / "own-nats", port=port)
        scan = json.dumps({"tenant": "bob", "user_id": 8}).encode()
        with anyio.fail_after(30):
            while True:
                # A request sent while the client reconnects is lost: retry on short timeouts.
                try:
                    msg = await nc.request("tgqr.sim.scan", scan, timeout=2)
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    continue
                reply = json.loads(msg.data)
                if reply["ok"] or reply["error"]["code"] != "unavailable":
                    break
        assert reply["ok"], reply
        events = await until(nc, "bob", "Authorized")
        ids = [e["id"] for e in events]
        assert len(ids) == len(set(ids))
        await nc.drain()
        up.proc.send_signal(signal.SIGTERM)
        assert await up.wait(10) == 0
    finally:
        up.close()
        server.stop()


async def test_embedded_nats_server_stops_with_the_service(tmp_path: Path) -> None:
    """Without --nats, `tgqr up` starts nats-server itself and stops it on SIGTERM."""
    data = tmp_path / "embedded"
    up = Up(None, data)
    try:
        await up.ready()
        url = (data / "nats.url").read_text().strip()
        app = read_credentials(data, "app")
        assert app is not None
        nc = await nats.connect(url, user=app.user, password=app.password)
        assert (await request(nc, "tgqr.cmd.zed.start", {}))["ok"]
        await nc.close()
        children = _nats_servers_using(data)
        assert children
        up.proc.send_signal(signal.SIGTERM)
        assert await up.wait(10) == 0
        assert _nats_servers_using(data) == []
        assert not (data / "nats.url").exists()
    finally:
        up.close()


def _nats_servers_using(data: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "nats-server" in cmdline and str(data) in cmdline:
            found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


async def gone(pid: int) -> None:
    """Return once process ``pid`` has ended (its pidfd turns readable)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await anyio.wait_readable(fd)
    finally:
        os.close(fd)
