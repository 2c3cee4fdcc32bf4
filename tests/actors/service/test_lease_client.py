"""The app helper ``lease_session``: against a running service and the simulator, and alone."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from nats.aio.client import Client

from actors.lease_client import (
    LeasedError,
    LeaseLostError,
    LeaseUnavailableError,
    NotAuthorizedError,
    lease_session,
)
from actors.service import (
    NatsAuth,
    Role,
    RunningService,
    ServiceConfig,
    connect_nats,
    read_credentials,
    run_service,
)

from ._apps import get_me, log_in
from .conftest import Driver

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


def test_the_helper_imports_with_only_nats_and_cryptography() -> None:
    """In a fresh interpreter, importing it loads none of the service's dependencies and no
    tgqr module but itself and actors.hpke."""
    probe = (
        "import sys, actors.lease_client\n"
        "heavy = {'anyio', 'msgspec', 'telethon', 'duckdb', 'opentelemetry'}\n"
        "tops = {name.split('.')[0] for name in sys.modules}\n"
        "ours = sorted(n for n in sys.modules if n.split('.')[0] in {'actors', 'events',"
        " 'projections'})\n"
        "print(sorted(heavy & tops), ours)\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[] ['actors', 'actors.hpke', 'actors.lease_client']"


def test_an_old_cryptography_fails_clearly() -> None:
    """Without HPKE (cryptography < 47) the import names the version it needs."""
    probe = (
        "import sys\n"
        "sys.modules['cryptography.hazmat.primitives.hpke'] = None\n"
        "try:\n"
        "    import actors.lease_client\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "need cryptography>=47 (HPKE with ML-KEM)" in out


async def test_lease_session_holds_renews_and_releases(driver: Driver) -> None:
    """The block gets alice's session (get_me is alice), user and DC; a second helper gets
    LeasedError; a renewal keeps the fence; on exit the lease is released."""
    await log_in(driver, "alice", 1001)
    async with lease_session(driver.nc, "alice", holder="parser-1", ttl_s=60) as lease:
        assert (lease.user_id, lease.holder) == (1001, "parser-1")
        assert await get_me(lease.session) == 1001
        assert "1AX" not in repr(lease)
        with pytest.raises(LeasedError) as refused:
            async with lease_session(driver.nc, "alice", holder="parser-2", suite="x25519"):
                pass
        assert refused.value.holder == "parser-1"
        assert refused.value.expires_at == lease.expires_at
        before, kinds = lease.expires_at, [e["type"] for e in await driver.events("alice")]
        await lease.renew(ttl_s=120)
        assert lease.expires_at > before
        assert [e["type"] for e in await driver.events("alice")] == kinds  # no event
        assert "proof" not in repr(lease)
        stolen = await driver.request(
            "tgqr.session.alice.release", {"lease_id": lease.lease_id, "revoked": True}
        )
        assert stolen["error"]["code"] == "lease_proof_invalid"  # the id alone is not enough
        await lease.renew()
        fence = lease.fence
    assert lease.lost
    events = await driver.events("alice")
    assert [(e["type"], e.get("reason")) for e in events][-1] == ("SessionReleased", "released")
    async with lease_session(driver.nc, "alice", holder="parser-2", suite="x25519") as again:
        assert again.fence > fence


async def test_a_lost_lease_stops_handing_out_the_session(driver: Driver) -> None:
    """When tgqr ends the lease (here: logout), the next renewal finds it lost and
    ``lease.session`` raises from then on; no tenant: NotAuthorizedError."""
    await log_in(driver, "erin", 1005)
    async with lease_session(driver.nc, "erin", holder="bot", suite="x25519") as lease:
        assert lease.session
        assert (await driver.command("erin", "logout"))["ok"]
        with pytest.raises(LeaseLostError):
            await lease.renew()
        with pytest.raises(LeaseLostError):
            _ = lease.session
    with pytest.raises(NotAuthorizedError):
        async with lease_session(driver.nc, "nobody", holder="bot", suite="x25519"):
            pass


async def test_the_app_role_leases_and_the_auditor_may_not(tmp_path: Path) -> None:
    """With auth on (the embedded server, as ``tgqr up`` runs it): role app leases alice's
    session with the helper; role auditor's request is refused by NATS (no reply)."""
    config = replace(
        ServiceConfig.from_env({"TGQR_HTTP": "off"}, data_dir=tmp_path / "data"),
        throttle_s=(0.0, 0.0),
    )
    async with anyio.create_task_group() as tg:
        running: RunningService = await tg.start(
            lambda task_status: run_service(config, task_status=task_status)
        )
        service_nc = await _connect(config.data_dir, "service", running.nats_url)
        app = await _connect(config.data_dir, "app", running.nats_url)
        watcher, user = Driver(service_nc, running), Driver(app, running)
        assert (await user.command("alice", "start"))["ok"]
        await watcher.wait_for("alice", "QrIssued")
        assert (await user.scan("alice", 1001))["ok"]
        await watcher.wait_for("alice", "Authorized")
        async with lease_session(app, "alice", holder="parser-1", suite="x25519") as lease:
            assert await get_me(lease.session) == 1001
        auditor = await _connect(config.data_dir, "auditor", running.nats_url)
        with pytest.raises(LeaseUnavailableError):
            async with lease_session(auditor, "alice", holder="spy", timeout_s=1):
                pass
        for nc in (app, auditor, service_nc):
            await nc.close()
        tg.cancel_scope.cancel()


async def _connect(data: Path, role: Role, url: str) -> Client:
    auth = NatsAuth(role, credentials=read_credentials(data, role))
    return await connect_nats([url], auth=auth, reconnect=False)
