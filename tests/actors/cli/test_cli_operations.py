"""Operating ``tgqr up`` as a process: its operations port, and progress on long work.

``tgqr up --metrics 127.0.0.1:0`` names its port on its first line and answers /healthz,
/readyz and /metrics; ``tgqr audit --verify``, ``projections rebuild`` and ``vault rotate``
show count, rate and ETA when stderr is a terminal, and nothing when piped or with ``--json``.
"""

from __future__ import annotations

import json
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

from actors.vault import KvSessionVault, load_key_ring
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


async def some_sessions(data: Path) -> None:
    """Three sessions in the vault of ``tgqr up``, sealed with its key."""
    nc = await connect_as(data, "service")
    try:
        vault = await KvSessionVault.open(nc.jetstream(), load_key_ring(data, create=False))
        for tenant in ("alice", "bob", "carol"):
            await vault.put(tenant, f"session-of-{tenant}", stage="authorized")
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


def test_rebuild_shows_progress_only_on_a_terminal(served: tuple[str, Path]) -> None:
    """``projections rebuild`` draws ``rebuilding: N/N events (100%), R/s`` on a terminal;
    with ``--json`` nothing is drawn and the reply is printed (two rebuilds: the service
    admits two a minute)."""
    _, data = served
    anyio.run(some_events, data)
    code, drawn = on_a_terminal("projections", "rebuild", "--data", str(data))
    assert code == 0, drawn
    assert re.search(r"\rrebuilding: (\d+)/\1 events \(100%\), [\d,]+/s", drawn), drawn
    rebuild = ("projections", "rebuild", "--data", str(data))
    main, child = pty.openpty()
    try:
        as_json = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "actors.cli", *rebuild, "--json"],
            stdout=subprocess.PIPE,
            stderr=child,
            env=child_env(),
            cwd=ROOT,
            check=False,
            timeout=60,
        )
    finally:
        os.close(child)
    os.set_blocking(main, False)
    try:
        drawn = os.read(main, 4096).decode()
    except OSError:  # EIO (the child closed its end) or EAGAIN: nothing was drawn
        drawn = ""
    finally:
        os.close(main)
    assert as_json.returncode == 0, drawn
    assert "rebuilding" not in drawn
    assert json.loads(as_json.stdout)["checkpoint"] >= 1


def test_vault_rotate_shows_progress_only_on_a_terminal(served: tuple[str, Path]) -> None:
    """``vault rotate`` draws ``re-encrypting: N/N entries (100%), R/s`` on a terminal;
    piped or with ``--json``: nothing (``--json`` prints ``{"rotated": N}``)."""
    _, data = served
    anyio.run(some_sessions, data)
    command = ("vault", "rotate", "--data", str(data))
    code, drawn = on_a_terminal(*command)
    assert code == 0, drawn
    found = re.search(r"\rre-encrypting: (\d+)/\1 entries \(100%\), [\d,]+/s", drawn)
    assert found, drawn
    piped = tgqr(*command)
    assert piped.returncode == 0, piped.stderr
    assert "re-encrypting" not in piped.stderr
    code, drawn = on_a_terminal(*command, "--json")
    assert code == 0, drawn
    assert "re-encrypting" not in drawn
    as_json = tgqr(*command, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"rotated": int(found.group(1))} == {"rotated": 3}
