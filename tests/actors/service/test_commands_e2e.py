"""End to end over NATS against a running service: the public command contract."""

from __future__ import annotations

import json
import random

import pytest

from .conftest import Driver

pytestmark = pytest.mark.anyio


async def test_plain_login_idempotent_start_and_logout(driver: Driver) -> None:
    """start -> QR -> scan -> Authorized; start again says authorized; logout logs out."""
    reply = await driver.command("alice", "start")
    assert reply == {"ok": True, "tenant": "alice", "attempt": 1, "state": "pending"}
    again = await driver.command("alice", "start")
    assert again["ok"] and again["attempt"] == 1 and again["state"] == "pending"
    qr = await driver.wait_for("alice", "QrIssued")
    assert qr["url"].startswith("tg://login?token=")
    assert (await driver.scan("alice", 1001))["ok"]
    authorized = await driver.wait_for("alice", "Authorized")
    assert authorized["user_id"] == 1001
    assert (await driver.command("alice", "start"))["state"] == "authorized"
    out = await driver.command("alice", "logout")
    assert out["ok"]
    assert (await driver.wait_for("alice", "LoggedOut"))["reason"] == "command"
    types = [e["type"] for e in await driver.events("alice")]
    assert types.count("LoginStarted") == 1


async def test_two_factor_with_a_wrong_then_right_password(driver: Driver) -> None:
    """PasswordRequired, a wrong password is rejected with tries left, the right one logs in."""
    await driver.command("bob", "start")
    await driver.wait_for("bob", "QrIssued")
    await driver.scan("bob", 1002, password="correct horse")
    required = await driver.wait_for("bob", "PasswordRequired")
    assert required["attempt"] == 1
    wrong = await driver.command("bob", "password", password="nope")
    assert wrong["ok"] and wrong["state"] == "password_required"
    assert (await driver.wait_for("bob", "PasswordRejected"))["tries_left"] == 4
    right = await driver.command("bob", "password", password="correct horse")
    assert right["ok"] and right["state"] == "authorized"
    stored = json.dumps(await driver.events("bob"))
    assert "correct horse" not in stored
    assert "nope" not in stored


async def test_cancel_ends_a_pending_login(driver: Driver) -> None:
    """cancel while pending gives LoginCancelled; cancelling again is wrong_state."""
    await driver.command("carol", "start")
    await driver.wait_for("carol", "QrIssued")
    reply = await driver.command("carol", "cancel")
    assert reply["ok"] and reply["state"] == "cancelled"
    again = await driver.command("carol", "cancel")
    assert again["ok"] is False and again["error"]["code"] == "wrong_state"


@pytest.mark.parametrize(
    ("subject", "body", "code"),
    [
        ("tgqr.cmd.bad$tenant.start", b"{}", "invalid_tenant"),
        ("tgqr.cmd." + "x" * 65 + ".start", b"{}", "invalid_tenant"),
        ("tgqr.cmd.dave.launch", b"{}", "invalid_request"),
        ("tgqr.cmd.dave.start", b"{not json", "invalid_request"),
        ("tgqr.cmd.dave.start", b'{"ttl_s": 0}', "invalid_request"),
        ("tgqr.cmd.dave.start", b'{"ttl_s": 601}', "invalid_request"),
        ("tgqr.cmd.dave.start", b'{"ttl_s": "10"}', "invalid_request"),
        ("tgqr.cmd.dave.start", b'{"expected_user_id": true}', "invalid_request"),
        ("tgqr.cmd.dave.start", b'{"surprise": 1}', "invalid_request"),
        ("tgqr.cmd.dave.password", b"{}", "invalid_request"),
        ("tgqr.cmd.dave.password", b'{"password": ""}', "invalid_request"),
        ("tgqr.cmd.dave.start", b"[]", "invalid_request"),
        ("tgqr.cmd.dave.start", b"x" * 70_000, "invalid_request"),
        ("tgqr.cmd.dave.password", b'{"password": "pw"}', "wrong_state"),
        ("tgqr.cmd.dave.logout", b"{}", "wrong_state"),
        ("tgqr.cmd.dave.cancel", b"{}", "wrong_state"),
    ],
)
async def test_error_codes(driver: Driver, subject: str, body: bytes, code: str) -> None:
    """Each mistake gets a structured error with its code, and no event is written."""
    reply = await driver.request(subject, raw=body)
    assert reply["ok"] is False
    assert reply["error"]["code"] == code
    assert reply["error"]["message"]
    assert await driver.events("dave") == []


async def test_rate_limit_on_start(driver: Driver) -> None:
    """The sixth start within a minute is rate_limited with retry_after_s; others pass."""
    replies = [await driver.command("erin", "start") for _ in range(6)]
    assert all(r["ok"] for r in replies[:5])
    assert replies[5]["error"]["code"] == "rate_limited"
    assert 0 < replies[5]["error"]["retry_after_s"] <= 60
    assert (await driver.command("frank", "start"))["ok"]


async def test_repeated_msg_id_gets_the_same_reply_and_no_new_events(driver: Driver) -> None:
    """A retried request with the same Nats-Msg-Id is answered again without new events."""
    headers = {"Nats-Msg-Id": "client-retry-1"}
    first = await driver.request("tgqr.cmd.gina.start", {"force": True}, headers=headers)
    await driver.wait_for("gina", "QrIssued")
    before = await driver.events("gina")
    second = await driver.request("tgqr.cmd.gina.start", {"force": True}, headers=headers)
    assert second == first
    assert await driver.events("gina") == before
    third = await driver.request("tgqr.cmd.gina.start", {"force": True})
    assert third["attempt"] == first["attempt"] + 1


async def test_fuzzed_bad_input_never_breaks_the_service(driver: Driver) -> None:
    """Seeded random garbage on every command subject: always a structured reply, no events."""
    rng = random.Random(20261121)
    verbs = ["start", "password", "cancel", "logout", "nope"]
    tenants = ["h", "ok_tenant", "a-b", "x" * 64]
    pieces = [
        b"{",
        b"}",
        b'"ttl_s"',
        b":",
        b"-1",
        b"1e999",
        b"null",
        b'"\\u0000"',
        b"[",
        b"\xff",
        b'"password"',
        b'"force"',
        b"true",
        b",",
        b" ",
        b'"expected_user_id"',
        b"9" * 30,
    ]
    for _ in range(120):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        subject = f"tgqr.cmd.{rng.choice(tenants)}.{rng.choice(verbs)}"
        msg = await driver.nc.request(subject, body, timeout=10)
        reply = json.loads(msg.data)
        assert isinstance(reply["ok"], bool)
        if not reply["ok"]:
            assert reply["error"]["code"] in {
                "invalid_tenant",
                "invalid_request",
                "wrong_state",
                "rate_limited",
            }
    health = await driver.request("tgqr.query.health", {})
    assert health["ok"]
    for tenant in tenants:
        for event in await driver.events(tenant):
            assert event["type"] in {"LoginStarted", "QrIssued", "LoginCancelled"}


async def test_micro_service_discovery(driver: Driver) -> None:
    """Commands and session leases are one nats.micro service named tgqr ($SRV.PING/INFO
    work, one answer per instance)."""
    ping = json.loads((await driver.nc.request("$SRV.PING.tgqr", b"", timeout=5)).data)
    assert ping["name"] == "tgqr"
    info = json.loads((await driver.nc.request("$SRV.INFO.tgqr", b"", timeout=5)).data)
    assert [e["subject"] for e in info["endpoints"]] == ["tgqr.cmd.*.*", "tgqr.session.*.*"]
