"""The CLI in a child process, as an operator runs it, against a test's nats-server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio

from actors.service import NatsServer

ROOT = Path(__file__).resolve().parents[3]


async def tgqr(
    nats_server: NatsServer, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI in a child process against the test's nats-server (never a real key)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
    base["TGQR_LOG_LEVEL"] = "WARNING"
    with anyio.fail_after(60):
        return await anyio.run_process(
            [sys.executable, "-m", "actors.cli", *args, "--nats", nats_server.url],
            input=stdin,
            check=False,
            env=base | (env or {}),
            cwd=ROOT,
        )


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode()


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()
