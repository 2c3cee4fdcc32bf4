"""A second writer on a tenant, through the real ``run_service`` wiring (NATS, JetStream).

The actor's append meets ``wrong last sequence``; the supervisor must see the real
``ConcurrencyConflictError`` (not an ``ExceptionGroup``), rehydrate the actor without
recording a crash, and never write into the other writer's chain.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events import Scanned
from events.audit import audit_verify
from events.jetstream import JetStreamEventLog

from .conftest import Driver

pytestmark = pytest.mark.anyio


async def test_a_conflict_rehydrates_without_counting_a_crash(driver: Driver) -> None:
    """Another writer appends between the actor's reads: the command in flight is answered
    ``unavailable``, no ``ActorRestarted`` is stored, the next command works on the other
    writer's history, and the chain still verifies."""
    assert (await driver.command("alice", "start"))["ok"]
    await driver.wait_for("alice", "QrIssued")

    other = JetStreamEventLog(driver.nc.jetstream(), driver.service.chain_key)
    head = await other.head("alice")
    scanned = Scanned(tenant="alice", attempt=1, at=datetime.now(UTC))
    await other.append("alice", [scanned], head)

    in_flight = await driver.command("alice", "cancel")
    assert in_flight["ok"] is False
    assert in_flight["error"]["code"] == "unavailable"

    again = await driver.command("alice", "cancel")
    assert again == {"ok": True, "tenant": "alice", "attempt": 1, "state": "cancelled"}

    kinds = [e["type"] for e in await driver.events("alice")]
    # Nothing counted as a crash from the conflict on. (Before it, a key exchange once in a
    # rare while fails in Telethon's own factorisation of pq, and the actor restarts.)
    assert "ActorRestarted" not in kinds[kinds.index("Scanned") :]
    assert kinds.count("LoginCancelled") == 1
    assert kinds.index("Scanned") < kinds.index("LoginCancelled")
    assert driver.service.supervisor.statistics().restarts == kinds.count("ActorRestarted")
    report = await audit_verify(driver.service.event_log, driver.service.chain_key, tenant="alice")
    assert report.ok, report
