"""``tgqr cluster`` (``make cluster``): three nodes, the shared simulator and three instances
come up; an app logs a tenant in through a node of its choice; Ctrl-C stops every child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from nats.js import api

from actors.service import connect_nats, resolve_auth
from events.jetstream import STREAM
from tests.actors.service.test_process import gone

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[3]


def ours(data: Path) -> list[int]:
    """Processes whose command line names ``data`` (the cluster's children)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(data).encode() in cmdline:
                found.append(int(proc.name))
    return found


async def test_make_cluster_serves_a_login_and_stops_clean(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "actors.cli", "cluster", "--free-ports", "--throttle", "0-0",
         "--data", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        with anyio.fail_after(90):
            line = (await anyio.to_thread.run_sync(process.stdout.readline)).decode()
        assert line.startswith("tgqr cluster: nodes "), line
        urls = line.split("nodes ", 1)[1].split(";", 1)[0].split(",")
        assert len(urls) == 3
        root = tmp_path / "cluster"
        auth = resolve_auth("app", data_dir=root, urls=urls[1:], env={})
        app = await connect_nats(urls[1:], auth=auth, reconnect=True)  # node 2 first
        kinds: list[str] = []
        arrived = anyio.Event()

        async def deliver(msg: object) -> None:
            kinds.append(json.loads(msg.data)["type"])  # type: ignore[attr-defined]
            arrived.set()

        await app.jetstream(timeout=5).subscribe(
            "tgqr.evt.alice",
            stream=STREAM,
            cb=deliver,
            ordered_consumer=True,
            config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL),
        )
        with anyio.fail_after(60):
            while True:  # the instances may still be sharing the partitions out
                reply = json.loads(
                    (await app.request("tgqr.cmd.alice.start", b"{}", timeout=20)).data
                )
                if reply["ok"]:
                    break
                assert reply["error"]["code"] == "unavailable", reply
                await anyio.sleep(reply["error"].get("retry_after_s", 1))
            while "QrIssued" not in kinds:
                await arrived.wait()
                arrived = anyio.Event()
            scan = {"tenant": "alice", "user_id": 4242}
            answer = json.loads((await app.request("tgqr.sim.scan", json.dumps(scan).encode(),
                                                   timeout=20)).data)  # fmt: skip
            assert answer["ok"], answer
            while "Authorized" not in kinds:
                await arrived.wait()
                arrived = anyio.Event()
        await app.close()
    finally:
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(60):
            code = await anyio.to_thread.run_sync(process.wait)
        rest = process.stdout.read().decode()
        process.stdout.close()
    assert code == 0, rest
    assert rest.rstrip().endswith("stopped"), rest
    # A page process ends by itself once its instance is gone (its lifeline pipe closes): at
    # most a moment later, never left running.
    with anyio.fail_after(15):
        for pid in ours(tmp_path):
            await gone(pid)
    assert ours(tmp_path) == []
