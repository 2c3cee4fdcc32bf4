"""Hostile log content: junk and forged events never stop the service, they quarantine a tenant.

Tried as an attacker on the same NATS server would: raw publishes on event subjects, with no
MAC or a made-up one. Through the real ``run_service`` wiring.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from actors.service import ConfigError, RunningService, ServiceConfig, lift_quarantine, run_service
from events import MAC_HEADER
from events.jetstream import JetStreamEventLog

from .conftest import Driver

pytestmark = pytest.mark.anyio


def forged_authorized(tenant: str) -> bytes:
    return json.dumps(
        {
            "type": "Authorized",
            "tenant": tenant,
            "attempt": 1,
            "at": "2026-01-01T00:00:00Z",
            "user_id": 666,
            "dc_id": 1,
            "session_fingerprint": "00",
        }
    ).encode()


async def test_junk_and_forgeries_quarantine_only_their_tenant(
    driver: Driver, service_config: ServiceConfig
) -> None:
    """Junk on mallory's subject and a forged Authorized on bob's (while bob logs in): both
    tenants answer ``tenant_quarantined``, alice logs in meanwhile, a restarted service starts
    and serves, and a repaired tenant works again."""
    js = driver.nc.jetstream()
    await js.publish("tgqr.evt.mallory", b"junk")
    reply = await driver.command("mallory", "start")
    assert reply["ok"] is False
    assert reply["error"]["code"] == "tenant_quarantined"

    assert (await driver.command("bob", "start"))["ok"]
    await driver.wait_for("bob", "QrIssued")
    await js.publish("tgqr.evt.bob", forged_authorized("bob"), headers={MAC_HEADER: "0" * 64})
    for _ in range(2):  # the live actor finds out on its next append, then every command
        reply = await driver.command("bob", "cancel")
        assert reply["error"]["code"] == "tenant_quarantined", reply

    assert (await driver.command("alice", "start"))["ok"]
    await driver.wait_for("alice", "QrIssued")
    assert (await driver.scan("alice", 1001))["ok"]
    await driver.wait_for("alice", "Authorized")
    assert driver.service.supervisor.statistics().quarantined == 2
    assert "ActorRestarted" not in [e["type"] for e in await driver.events("bob")]

    # A second service on the same log starts (resuming every tenant) and serves.
    async with anyio.create_task_group() as tg:
        second: RunningService = await tg.start(
            lambda task_status: run_service(service_config, task_status=task_status)
        )
        reply = await driver.command("mallory", "start")
        assert reply["error"]["code"] == "tenant_quarantined"
        # As `tgqr tenant repair` does: its own reader of the log, not an instance's (whose
        # appends are fenced to the tenants it owns).
        operator = JetStreamEventLog(second.nc.jetstream(timeout=10), second.chain_key)
        repaired = await lift_quarantine(
            operator, "mallory", clock=lambda: datetime.now(UTC), note="test junk"
        )
        assert not repaired.quarantined
        assert [b.seq for b in repaired.released] == [1]
        reply = await driver.command("mallory", "start")
        assert reply["ok"], reply
        assert reply["state"] == "pending"
        tg.cancel_scope.cancel()


async def test_a_service_with_another_chain_key_refuses_to_start(
    driver: Driver, service_config: ServiceConfig, tmp_path: Path
) -> None:
    """A second instance given a different chain key would see every event as forged and
    quarantine every tenant: it refuses to start, with one line naming the key id."""
    assert (await driver.command("alice", "start"))["ok"]
    await driver.wait_for("alice", "QrIssued")
    other = replace(service_config, data_dir=tmp_path / "other-data")
    with anyio.fail_after(30), pytest.raises(ConfigError, match="does not match this log"):
        await run_service(other)  # raises before it serves
