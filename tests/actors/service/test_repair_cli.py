"""`tgqr tenant repair` and `tgqr audit --verify` as an operator runs them, against a running
service on a real nats-server: junk and a forgery quarantine a tenant, the audit names them, a
wrong or missing chain key is told apart from a forgery, and a confirmed repair releases the
tenant while the audit keeps showing what it released."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.service import NatsServer, ServiceConfig
from events import MAC_HEADER, QuarantineLifted

from ._cli import err, out, tgqr
from .conftest import Driver

pytestmark = pytest.mark.anyio

OTHER_KEY = "ab" * 32


def forged_scanned(tenant: str) -> bytes:
    return json.dumps(
        {"type": "Scanned", "tenant": tenant, "attempt": 1, "at": "2026-01-01T00:00:00Z"}
    ).encode()


async def test_audit_and_repair_from_the_command_line(
    driver: Driver, service_config: ServiceConfig, nats_server: NatsServer
) -> None:
    """The whole operator's path, with each audit and repair answer as the operator sees it."""
    data = str(service_config.data_dir)
    js = driver.nc.jetstream()
    assert (await driver.command("alice", "start"))["ok"]
    await driver.wait_for("alice", "QrIssued")
    assert (await driver.command("mallory", "start"))["ok"]
    await driver.wait_for("mallory", "QrIssued")
    junk = (await js.publish("tgqr.evt.mallory", b"junk")).seq
    forged = (
        await js.publish(
            "tgqr.evt.mallory", forged_scanned("mallory"), headers={MAC_HEADER: "0" * 64}
        )
    ).seq
    key_id = driver.service.chain_key.id

    broken = await tgqr(nats_server, "audit", "--verify", "--data", data)
    assert broken.returncode == 1, err(broken)
    assert err(broken).startswith(f"chain broken at sequence {junk} (tenant mallory): undecodable")
    assert f"break: sequence {forged} (tenant mallory): MAC mismatch: event altered or forged" in (
        out(broken)
    )
    [junk_line] = [line for line in out(broken).splitlines() if line.startswith(f"#{junk} ")]
    assert " | not in the chain: undecodable" in junk_line

    # A wrong key is a mismatch (with both ids), not a forgery; a missing key is one line.
    wrong = await tgqr(
        nats_server, "audit", "--verify", "--data", data, env={"TGQR_CHAIN_KEY": OTHER_KEY}
    )
    assert wrong.returncode == 1
    assert out(wrong) == ""
    [line] = err(wrong).splitlines()
    assert line.startswith(
        f"tgqr: the chain key does not match this log: its events were sealed with key id "
        f"{key_id}, the key from TGQR_CHAIN_KEY has id "
    )
    elsewhere = Path(data).parent / "elsewhere"
    missing = await tgqr(nats_server, "audit", "--verify", "--data", str(elsewhere))
    assert missing.returncode == 1
    assert err(missing) == (
        f"tgqr: no chain key: TGQR_CHAIN_KEY is not set and {elsewhere / 'chain.key'} does not "
        "exist: pass --data DIR (the data directory of `tgqr up`) or set TGQR_CHAIN_KEY\n"
    )
    assert not elsewhere.exists()
    refused = await tgqr(
        nats_server, "tenant", "repair", "mallory", "--yes", env={"TGQR_CHAIN_KEY": OTHER_KEY}
    )
    assert refused.returncode == 1
    assert "the chain key does not match this log" in err(refused)

    healthy = await tgqr(nats_server, "tenant", "repair", "alice", "--data", data)
    assert healthy.returncode == 0, err(healthy)
    assert out(healthy) == "alice is not quarantined: nothing to do\n"

    log = driver.service.event_log
    head_before = await log.head("mallory")
    declined = await tgqr(nats_server, "tenant", "repair", "mallory", "--data", data, stdin=b"n\n")
    assert declined.returncode == 1
    assert err(declined) == "tgqr: mallory not released (answer y, or pass --yes)\n"
    assert f"  sequence {junk}: undecodable: " in out(declined)
    assert f"  sequence {forged}: MAC mismatch: event altered or forged" in out(declined)
    assert await log.head("mallory") == head_before

    repaired = await tgqr(
        nats_server, "tenant", "repair", "mallory", "--data", data, "--note", "test junk",
        stdin=b"y\n",
    )  # fmt: skip
    assert repaired.returncode == 0, err(repaired)
    after = await log.load_tenant("mallory")
    assert not after.quarantined
    assert [b.seq for b in after.released] == [junk, forged]
    [lifted] = [r for r in after.records if isinstance(r.event, QuarantineLifted)]
    assert isinstance(lifted.event, QuarantineLifted)
    assert lifted.event.note == "test junk"
    assert lifted.event.kid == key_id
    [released_line] = [
        line for line in out(repaired).splitlines() if line.startswith("released mallory")
    ]
    lift_seq = lifted.seq
    assert released_line == (
        f"released mallory: sequence(s) {junk}, {forged} by QuarantineLifted at sequence {lift_seq}"
    )
    # mallory's actor was live: its next append meets the repair's event, a second writer, so
    # it stops and rehydrates, and that first command is told to retry (README, "Repair").
    for _ in range(3):
        reply = await driver.command("mallory", "start")
        if reply["ok"] or reply["error"]["code"] != "unavailable":
            break
    assert reply["ok"], reply
    assert reply["state"] == "pending"

    # The audit keeps the bad sequences, marked released, and passes.
    verified = await tgqr(nats_server, "audit", "--verify", "--data", data)
    assert verified.returncode == 0, err(verified)
    released = f"released by QuarantineLifted at sequence {lift_seq}"
    assert f"break: sequence {junk} (tenant mallory): undecodable" in out(verified)
    assert f"break: sequence {forged} (tenant mallory): MAC mismatch" in out(verified)
    breaks = [line for line in out(verified).splitlines() if line.startswith("break: ")]
    assert len(breaks) == 2
    assert all(line.endswith(f"; {released}") for line in breaks)
    assert "2 bad message(s), each released by QuarantineLifted" in out(verified)
    as_json = await tgqr(nats_server, "audit", "--verify", "--json", "--data", data)
    assert as_json.returncode == 0, err(as_json)
    lines = [json.loads(line) for line in out(as_json).splitlines()]
    verdict = lines[-1]["verify"]
    assert verdict["ok"] is True
    assert verdict["key_id"] == key_id
    assert [(b["seq"], b["released_by"]) for b in verdict["breaks"]] == [
        (junk, lift_seq),
        (forged, lift_seq),
    ]
    [junk_record] = [line for line in lines[:-1] if line["seq"] == junk]
    assert junk_record["released_by"] == lift_seq
    assert junk_record["bad"].startswith("undecodable")
    plain = await tgqr(nats_server, "audit", "mallory")
    assert plain.returncode == 0, err(plain)
    marked = [line for line in out(plain).splitlines() if line.endswith(f" | {released}")]
    assert [line.split()[0] for line in marked] == [f"#{junk}", f"#{forged}"]

    again = await tgqr(nats_server, "tenant", "repair", "mallory", "--data", data, "--yes")
    assert (
        out(again) == "mallory is not quarantined: nothing to do (2 message(s) released earlier)\n"
    )
