"""``tgqr`` against a NATS cluster with auth, given no credentials, as a new user first tries
it: one line and a non-zero exit within 10 s, never a silent hang (nats-py alone loops forever
over the servers the cluster announces, each refusing the credentials)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from ._cluster import Cluster, running_cluster

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[3]
LIMIT_S = 10


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path / "cluster") as running:
        yield running


async def tgqr_within_limit(*args: str) -> tuple[int, str]:
    """Run ``tgqr`` as a child: its exit code and stderr, once it ended within the limit
    (it is killed after a grace period, and the test fails)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
    env |= {"TGQR_HTTP": "off", "TGQR_LOG_LEVEL": "WARNING"}
    started = time.monotonic()
    with anyio.move_on_after(LIMIT_S + 5):
        result = await anyio.run_process(
            [sys.executable, "-m", "actors.cli", *args], env=env, cwd=ROOT, check=False
        )
    took = time.monotonic() - started
    assert took < LIMIT_S, f"tgqr {' '.join(args)} still running after {took:.1f}s"
    return result.returncode, result.stderr.decode()


def assert_one_line(code: int, stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert code != 0
    assert len(lines) == 1, stderr
    assert lines[0].startswith("tgqr: "), stderr
    return lines[0]


async def test_status_and_up_without_credentials_fail_at_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    """`status` and `up --nats` on one node, and on every node listed, with a dead port
    among them: each is one line naming the refusal and what to pass, in time."""
    await cluster.formed()
    data = str(tmp_path / "data")  # no credentials of an embedded server in it
    dead = "nats://127.0.0.1:1"
    for urls in (cluster.urls[0], ",".join((dead, *cluster.urls))):
        code, stderr = await tgqr_within_limit("status", "--nats", urls, "--data", data)
        line = assert_one_line(code, stderr)
        assert "refused the credentials as role app (no credentials)" in line
        assert "--creds FILE" in line
        code, stderr = await tgqr_within_limit("up", "--nats", urls, "--data", data)
        line = assert_one_line(code, stderr)
        assert "refused the credentials as role service (no credentials)" in line


async def test_a_node_that_never_answers_is_passed_over(cluster: Cluster, tmp_path: Path) -> None:
    """A listed address that accepts TCP but never speaks NATS (a black hole after the
    handshake) does not hide the nodes listed after it, nor hang the command."""
    await cluster.formed()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - not Django
    async with listener, anyio.create_task_group() as tg:

        async def hold(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await anyio.sleep_forever()

        tg.start_soon(listener.serve, hold)
        urls = ",".join((f"nats://127.0.0.1:{port}", cluster.urls[1]))
        data = str(tmp_path / "data")
        code, stderr = await tgqr_within_limit("status", "--nats", urls, "--data", data)
        line = assert_one_line(code, stderr)
        assert "refused the credentials as role app" in line
        tg.cancel_scope.cancel()
