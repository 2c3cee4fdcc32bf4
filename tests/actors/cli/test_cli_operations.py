"""Operating ``tgqr up`` as a process: its operations port, and progress on long work.

``tgqr up --metrics 127.0.0.1:0`` names its port on its first line and answers /healthz,
/readyz and /metrics; ``tgqr audit --verify`` shows count, rate and ETA when stderr is a
terminal, and nothing when piped or with ``--json``.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.actors.service.conftest import connect_as, request

from ._children import ROOT, child_env, tgqr

pytestmark = [pytest.mark.slow]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``tgqr up --metrics 127.0.0.1:0``: its metrics URL and data directory."""
    data = tmp_path / "data"
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "actors.cli", "up", "--data", str(data), "--metrics", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(TGQR_LOG_LEVEL="WARNING"),
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.search(r"metrics (http://\S+)/metrics", first)
        assert found, first
        yield found.group(1), data
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def on_a_terminal(*args: str) -> tuple[int, str]:
    """Run ``tgqr *args`` with stderr on a pseudo-terminal; its exit code and what it drew."""
    main, child = pty.openpty()
    try:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "actors.cli", *args],
            stdout=subprocess.DEVNULL,
            stderr=child,
            env=child_env(),
            cwd=ROOT,
        )
    finally:
        os.close(child)
    drawn = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        drawn += chunk
    os.close(main)
    return proc.wait(timeout=30), drawn.decode()


async def some_events(data: Path) -> None:
    nc = await connect_as(data, "app")
    try:
        for tenant in ("alice", "bob"):
            assert (await request(nc, f"tgqr.cmd.{tenant}.start", {}))["ok"]
    finally:
        await nc.drain()


def test_up_serves_the_operations_port(served: tuple[str, Path]) -> None:
    """The port on tgqr up's first line answers health, readiness and Prometheus."""
    url, data = served
    anyio.run(some_events, data)
    with httpx2.Client(base_url=url, timeout=10) as http:
        assert http.get("/healthz").text == "ok\n"
        assert http.get("/readyz").text == "ready\n"
        scrape = http.get("/metrics").text
    assert re.search(r"^auth_qr_start_total 2\.0$", scrape, re.MULTILINE), scrape


def test_audit_verify_shows_progress_only_on_a_terminal(served: tuple[str, Path]) -> None:
    """On a terminal: ``verifying: N/N events (100%), R/s``; piped or --json: nothing."""
    _, data = served
    anyio.run(some_events, data)
    code, drawn = on_a_terminal("audit", "--verify", "--data", str(data))
    assert code == 0, drawn
    assert re.search(r"\rverifying: (\d+)/\1 events \(100%\), [\d,]+/s", drawn), drawn
    piped = tgqr("audit", "--verify", "--data", str(data))
    assert piped.returncode == 0, piped.stderr
    assert "verifying" not in piped.stderr
    code, drawn = on_a_terminal("audit", "--verify", "--json", "--data", str(data))
    assert code == 0
    assert "verifying" not in drawn
