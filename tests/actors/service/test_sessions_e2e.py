"""Session leases end to end: a running service, the simulator, and an app that has nothing of
tgqr, only nats-py, ``cryptography`` (HPKE) and Telethon, as a SaaS backend would."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import nats
import pytest
from nats.aio.client import Client

from actors.service import NatsServer, RunningService, ServiceConfig, run_service

from ._apps import App, get_me, log_in
from .conftest import Driver

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(config: ServiceConfig, url: str) -> AsyncIterator[tuple[Driver, App]]:
    """The service (its own simulator, kept under the data dir) and a plain client."""
    async with anyio.create_task_group() as tg:
        service: RunningService = await tg.start(
            lambda task_status: run_service(config, task_status=task_status)
        )
        nc = await nats.connect(url, max_reconnect_attempts=0)
        try:
            yield Driver(nc, service), App(nc, [])
        finally:
            await nc.drain()
            tg.cancel_scope.cancel()


async def stream_bytes(nc: Client) -> bytes:
    """Every stored message of every stream and bucket, raw."""
    js = nc.jetstream()
    out = []
    for stream in await js.streams_info():
        for seq in range(max(stream.state.first_seq, 1), stream.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream.config.name or "", seq)
            except nats.js.errors.NotFoundError:
                continue
            out.append(msg.data or b"")
    return b"".join(out)


def files_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file())


async def test_an_app_leases_alices_session_and_uses_it_across_a_restart(
    service_config: ServiceConfig,
    nats_server: NatsServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plain client leases alice's session, opens it, get_me is alice; another holder gets
    ``leased``; after the service restarts the same session still works, the lease still
    holds and renews with its fence; released, the next lease has a higher fence. The
    session string is nowhere but inside ``sealed``: not in a stored message, the NATS store
    on disk, the service log or any reply."""
    caplog.set_level(logging.DEBUG)
    async with serving(service_config, nats_server.url) as (driver, app):
        await log_in(driver, "alice", 1001)
        first, session = await app.lease("alice", "parser-1")
        assert first["ok"], first
        assert set(first) == {
            "ok", "tenant", "lease_id", "fence", "expires_at", "user_id", "dc_id", "suite",
            "sealed", "proof_sealed", "proof_digest", "device",
        }  # fmt: skip
        assert (first["tenant"], first["user_id"], first["suite"]) == (
            "alice",
            1001,
            "mlkem768-x25519",
        )
        assert session is not None
        assert await get_me(session) == 1001
        refused, _ = await app.lease("alice", "parser-2", suite="x25519")
        assert refused["error"]["code"] == "leased"
        assert refused["error"]["holder"] == "parser-1"
        assert refused["error"]["expires_at"] == first["expires_at"]
        leased = await driver.wait_for("alice", "SessionLeased")
        assert (leased["holder"], leased["fence"]) == ("parser-1", first["fence"])
        proofs = dict(app.proofs)

    async with serving(service_config, nats_server.url) as (driver, app):
        assert await get_me(session) == 1001  # the simulator kept its ports and keys
        again, _ = await app.lease("alice", "parser-2")
        assert again["error"]["code"] == "leased"  # the lease lives in the log
        app.proofs.update(proofs)  # the holder kept its proof across the restart
        renewed = await app.ask("alice", "renew", app.held(first["lease_id"]))
        assert renewed["ok"], renewed
        assert set(renewed) == {"ok", "lease_id", "fence", "expires_at"}
        assert renewed["fence"] == first["fence"]
        assert await app.ask("alice", "release", app.held(first["lease_id"])) == {"ok": True}
        second, session2 = await app.lease("alice", "parser-2", suite="x25519")
        assert second["ok"], second
        assert second["fence"] > first["fence"]
        assert session2 == session
        assert await get_me(session2 or "") == 1001
        assert (await app.ask("alice", "release", app.held(second["lease_id"])))["ok"]
        stored = await stream_bytes(driver.nc)
        replies = b"".join(app.replies)

    secret = session.encode()
    assert secret not in stored
    assert secret not in files_under(tmp_path / "nats")
    assert secret not in replies
    assert session not in caplog.text


async def test_logout_ends_the_lease_first_and_a_revoked_release_logs_out(
    driver: Driver,
) -> None:
    """logout while leased: SessionReleased(logout), LoggedOut(command). Logged in again and
    leased, a release with revoked: SessionReleased(revoked), LoggedOut(revoked), and the
    session is dead at Telegram; the tenant has nothing to lease any more."""
    app = App(driver.nc, [])
    await log_in(driver, "bob", 1002)
    granted, _ = await app.lease("bob", "parser-1", suite="x25519")
    assert granted["ok"]
    assert (await driver.command("bob", "logout"))["ok"]
    kinds = [(e["type"], e.get("reason")) for e in await driver.events("bob")]
    assert kinds[-2:] == [("SessionReleased", "logout"), ("LoggedOut", "command")]
    lost = await app.ask("bob", "renew", app.held(granted["lease_id"]))
    assert lost["error"]["code"] == "lease_lost"

    assert (await driver.command("bob", "start", force=True))["ok"]
    await driver.wait_for("bob", "QrIssued")
    assert (await driver.scan("bob", 1002))["ok"]
    with anyio.fail_after(20):
        while [e["type"] for e in await driver.events("bob")].count("Authorized") < 2:
            await driver.wait_for("bob", "Authorized")
    lease, session = await app.lease("bob", "parser-1", suite="x25519")
    assert session is not None
    reply = await app.ask("bob", "release", app.held(lease["lease_id"], revoked=True))
    assert reply == {"ok": True}
    kinds = [(e["type"], e.get("reason")) for e in await driver.events("bob")]
    assert kinds[-3:] == [
        ("SessionReleased", "revoked"),
        ("SessionRevoked", None),
        ("LoggedOut", "revoked"),
    ]
    assert await get_me(session) is None  # logged out at Telegram
    refused, _ = await app.lease("bob", "parser-1")
    assert refused["error"]["code"] == "not_authorized"


@pytest.mark.parametrize(
    ("subject", "body", "code"),
    [
        ("tgqr.session.bad$t.lease", b"{}", "invalid_tenant"),
        ("tgqr.session.carol.steal", b"{}", "invalid_request"),
        ("tgqr.session.carol.lease", b"{not json", "invalid_request"),
        ("tgqr.session.carol.lease", b'{"holder": "a b", "public_key": "AAAA"}', "invalid_request"),
        ("tgqr.session.carol.lease", b'{"holder": "a", "public_key": "AAAA"}', "invalid_request"),
        (
            "tgqr.session.carol.lease",
            b'{"holder": "a", "public_key": "' + base64.b64encode(b"k" * 32) + b'", "ttl_s": 5}',
            "invalid_request",
        ),
        (
            "tgqr.session.carol.lease",
            b'{"holder": "a", "public_key": "' + base64.b64encode(b"k" * 32) + b'"}',
            "invalid_request",  # 32 bytes are not an ML-KEM-768 + X25519 key
        ),
        (
            "tgqr.session.carol.lease",
            b'{"holder": "a", "suite": "x25519", "public_key": "'
            + base64.b64encode(b"k" * 32)
            + b'"}',
            "not_authorized",
        ),
        ("tgqr.session.carol.renew", b'{"lease_id": "nope"}', "lease_lost"),
        ("tgqr.session.carol.release", b'{"lease_id": "nope"}', "lease_lost"),
        ("tgqr.session.carol.release", b'{"lease_id": "n", "extra": 1}', "invalid_request"),
        ("tgqr.session.carol.renew", b'{"lease_id": "n", "proof": "*"}', "invalid_request"),
        ("tgqr.session.carol.release", b'{"lease_id": "n", "proof": "AAAA"}', "lease_lost"),
    ],
)
async def test_refusals_are_structured(
    driver: Driver, subject: str, body: bytes, code: str
) -> None:
    """Junk, bad keys and ttl, unknown leases: one ``{"ok": false, "error": {code}}`` each."""
    reply = await driver.request(subject, raw=body)
    assert reply["ok"] is False
    assert reply["error"]["code"] == code, reply


@pytest.mark.slow
async def test_an_unrenewed_lease_ends_and_the_next_gets_a_higher_fence(driver: Driver) -> None:
    """ttl_s=10 without renewal: SessionReleased(expired) (written by the actor's timer, seen
    in the stream); a late renew is lease_lost; a new holder gets a higher fence. (Real time:
    the fake-clock version of this is in tests/actors/login/test_lease_actor.py.)"""
    app = App(driver.nc, [])
    await log_in(driver, "dave", 1004)
    first, _ = await app.lease("dave", "parser-1", suite="x25519", ttl_s=10)
    released = await driver.wait_for("dave", "SessionReleased", within_s=25)
    assert (released["lease_id"], released["reason"]) == (first["lease_id"], "expired")
    late = await app.ask("dave", "renew", app.held(first["lease_id"]))
    assert late["error"]["code"] == "lease_lost"
    second, session = await app.lease("dave", "parser-2", suite="x25519")
    assert second["fence"] > first["fence"]
    assert session is not None
