"""The restore drill, as an operator runs it: `tgqr up` (embedded, auth on, the simulator),
logins, `tgqr backup create` to S3 (a real SeaweedFS), more logins, an incremental backup, the
store destroyed, `tgqr backup restore`, `tgqr up` again: every authorized tenant is authorized,
its session opens with Telethon against the simulator through a lease, and `tgqr audit
--verify` is clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from actors.service import RunningService, ServiceConfig, run_service
from tests.actors.service._apps import App, get_me, log_in
from tests.actors.service.conftest import Driver, connect_as

from ._seaweed import S3Server
from .conftest import BUCKET

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


@asynccontextmanager
async def serving(data: Path) -> AsyncIterator[Driver]:
    """``run_service`` as ``tgqr up`` runs it on ``data`` (embedded server, auth on), and a
    client as role service."""
    env = {"TGQR_HTTP": "off", "TGQR_METRICS": "off"}
    config = replace(ServiceConfig.from_env(env, data_dir=data), throttle_s=(0.0, 0.0))
    async with anyio.create_task_group() as tg:
        running: RunningService = await tg.start(
            lambda task_status: run_service(config, task_status=task_status)
        )
        nc = await connect_as(data, "service")
        try:
            yield Driver(nc, running)
        finally:
            await nc.close()
            tg.cancel_scope.cancel()


async def cli(s3: S3Server, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": "/usr/bin:/bin", "TGQR_LOG_LEVEL": "WARNING", **s3.env()}
    with anyio.fail_after(60):
        return await anyio.run_process(
            [sys.executable, "-m", "actors.cli", *args], check=False, env=env, cwd=ROOT
        )


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


async def raw_log(driver: Driver) -> list[tuple[int, bytes, dict[str, str]]]:
    js = driver.nc.jetstream(timeout=5)
    info = await js.stream_info("TGQR_EVENTS")
    out = []
    for seq in range(1, info.state.last_seq + 1):
        msg = await js.get_msg("TGQR_EVENTS", seq)
        out.append((seq, msg.data or b"", dict(msg.headers or {})))
    return out


async def test_the_restore_drill(s3: S3Server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"s3://{BUCKET}/drill"
    users = {"alice": 1001, "bob": 1002, "carol": 1003}
    async with serving(data) as driver:
        for tenant in ("alice", "bob"):
            await log_in(driver, tenant, users[tenant])
        first = ok(await cli(s3, "backup", "create", "--to", url, "--data", str(data)))
        assert "(full)" in first
        await log_in(driver, "carol", users["carol"])
        second = ok(await cli(s3, "backup", "create", "--to", url, "--data", str(data)))
        assert "(incremental after " in second
        before = await raw_log(driver)
    listed = ok(await cli(s3, "backup", "list", url, "--data", str(data))).splitlines()
    assert len(listed) == 2
    assert " full " in listed[0] and " after " in listed[1]

    shutil.rmtree(data / "nats")  # the store is lost; the keys and the simulator are not
    restored = ok(await cli(s3, "backup", "restore", "--from", url, "--data", str(data)))
    assert f"sequences 1..{len(before)}" in restored
    refused = await cli(s3, "backup", "restore", "--from", url, "--data", str(data))
    assert refused.returncode == 1
    assert "already holds TGQR_EVENTS" in refused.stderr.decode()

    async with serving(data) as driver:
        assert (await raw_log(driver))[: len(before)] == before
        app_nc = await connect_as(data, "app")
        try:
            app = App(app_nc, [])
            for tenant, user in users.items():
                reply, session = await app.lease(tenant, "drill")
                assert reply["ok"], reply
                assert session is not None
                assert await get_me(session) == user
        finally:
            await app_nc.close()
        audit = await cli(s3, "audit", "--verify", "--data", str(data))
        assert audit.returncode == 0, audit.stdout.decode() + audit.stderr.decode()
