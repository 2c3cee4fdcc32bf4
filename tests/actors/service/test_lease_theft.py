"""Lease theft, attacked with the real ``app`` credentials on the embedded server (auth on, the
accounts of the shipped ``nats.conf``): another app reads the lease's id in the log and tries
to renew, release or revoke it. Only the holder's proof (sealed to the holder's key in the
lease reply) does that; the log holds a digest of it, nothing that grants control. A renewal
writes no event and outlives a restart.

The apps here use nothing of tgqr: nats-py, ``cryptography`` (HPKE) and JSON.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519
from nats.aio.client import Client

from actors.gateway import SESSION_LIMITS
from actors.service import RunningService, ServiceConfig, run_service
from events.jetstream import STREAM
from tests.actors.service.conftest import connect_as, core_subjects, mirrored, request
from tests.actors.service.test_boundary import log_in

pytestmark = pytest.mark.anyio

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


@dataclass
class Held:
    """What the holder keeps of a lease: the reply, the session and the proof it opened."""

    reply: dict[str, Any]
    session: str
    proof: bytes

    @property
    def lease_id(self) -> str:
        return str(self.reply["lease_id"])

    def body(self, **more: Any) -> dict[str, Any]:
        return {"lease_id": self.lease_id, "proof": base64.b64encode(self.proof).decode(), **more}


async def lease(app: Client, tenant: str, holder: str, ttl_s: int = 60) -> Held:
    """Lease as an app does by hand: a key pair, the request, HPKE open of both sealed values."""
    private = x25519.X25519PrivateKey.generate()
    body = {
        "holder": holder,
        "public_key": base64.b64encode(private.public_key().public_bytes_raw()).decode(),
        "suite": "x25519",
        "ttl_s": ttl_s,
    }
    reply = await request(app, f"tgqr.session.{tenant}.lease", body)
    assert reply["ok"], reply
    bound = f"{tenant}|{reply['lease_id']}|{reply['fence']}"
    session = _SUITE.decrypt(
        base64.b64decode(reply["sealed"]), private, f"tgqr-lease|{bound}".encode()
    )
    proof = _SUITE.decrypt(
        base64.b64decode(reply["proof_sealed"]), private, f"tgqr-lease-proof|{bound}".encode()
    )
    return Held(reply, session.decode(), proof)


async def read_lease_from_the_log(thief: Client, running: RunningService, tenant: str) -> Any:
    """What any app may read: the tenant's last event, from the log (the clients' mirror)."""
    await mirrored(thief, running)
    msg = await thief.jetstream(timeout=5).get_last_msg(STREAM, f"tgqr.evt.{tenant}")
    return json.loads(msg.data or b"{}")


def config_for(data: Path) -> ServiceConfig:
    env = {"TGQR_HTTP": "off"}  # no page: these tests need no HTTP port
    return replace(ServiceConfig.from_env(env, data_dir=data), throttle_s=(0.0, 0.0))


@asynccontextmanager
async def serving(data: Path) -> AsyncIterator[RunningService]:
    """``run_service`` as ``tgqr up`` runs it (its own nats-server, auth on) for the block."""
    async with anyio.create_task_group() as tg:
        running: RunningService = await tg.start(
            lambda task_status: run_service(config_for(data), task_status=task_status)
        )
        try:
            yield running
        finally:
            tg.cancel_scope.cancel()


async def test_an_app_that_reads_the_lease_id_cannot_renew_release_or_revoke(
    tmp_path: Path,
) -> None:
    """Role app (a second app) reads lease_id and fence of alice's lease in the log and asks
    renew, release and release with revoked: without a proof, with a guessed one, with the
    digest the log shows, with the proof of bob's lease and of alice's earlier lease: each
    refused ``lease_proof_invalid``, no event appended; the lease still runs (the thief's own
    lease is ``leased``) and the holder renews and releases with its proof. (Before: the
    thief's release ended the lease, a revoked one logged alice out, and it leased the
    session itself.)"""
    data = tmp_path / "data"
    async with serving(data) as running:
        holder, thief = await connect_as(data, "app"), await connect_as(data, "app")
        await log_in(holder, "alice", 1001)
        await log_in(holder, "bob", 1002)
        earlier = await lease(holder, "alice", "parser-1")
        assert (await request(holder, "tgqr.session.alice.release", earlier.body()))["ok"]
        held = await lease(holder, "alice", "parser-1")
        bobs = await lease(holder, "bob", "parser-1")
        seen = await read_lease_from_the_log(thief, running, "alice")
        assert seen["type"] == "SessionLeased"
        assert (seen["lease_id"], seen["fence"]) == (held.lease_id, held.reply["fence"])
        assert len(seen["proof_digest"]) == 64
        stored = json.dumps(await core_subjects(running, "alice"))
        assert base64.b64encode(held.proof).decode() not in stored
        assert held.proof.hex() not in stored

        before = await core_subjects(running, "alice")
        proofs = [
            None,
            base64.b64encode(secrets.token_bytes(32)).decode(),
            base64.b64encode(bytes.fromhex(seen["proof_digest"])).decode(),
            base64.b64encode(bobs.proof).decode(),
            base64.b64encode(earlier.proof).decode(),
        ]
        for proof in proofs:
            extra = {} if proof is None else {"proof": proof}
            for verb, body in [
                ("renew", {"lease_id": seen["lease_id"], "ttl_s": 3600, **extra}),
                ("release", {"lease_id": seen["lease_id"], **extra}),
                ("release", {"lease_id": seen["lease_id"], "revoked": True, **extra}),
            ]:
                reply = await request(thief, f"tgqr.session.alice.{verb}", body)
                assert reply["ok"] is False, (verb, body, reply)
                assert reply["error"]["code"] == "lease_proof_invalid", reply
                assert held.session not in json.dumps(reply)
        assert await core_subjects(running, "alice") == before
        taken = await lease_refusal(thief, "alice")
        assert (taken["code"], taken["holder"]) == ("leased", "parser-1")

        renewed = await request(holder, "tgqr.session.alice.renew", held.body(ttl_s=120))
        assert renewed["ok"], renewed
        assert set(renewed) == {"ok", "lease_id", "fence", "expires_at"}
        assert await core_subjects(running, "alice") == before  # a renewal writes no event
        released = await request(holder, "tgqr.session.alice.release", held.body())
        assert released == {"ok": True}
        after = await core_subjects(running, "alice")
        assert [(e["type"], e.get("reason")) for e in after[len(before) :]] == [
            ("SessionReleased", "released")
        ]
        for nc in (holder, thief):
            await nc.close()


async def test_a_renewal_writes_no_event_and_outlives_a_restart(tmp_path: Path) -> None:
    """The holder renews to an hour: no event is appended; the service restarts (its own
    nats-server too); the restarted actor knows the renewed expiry (the ``leased`` refusal
    names it, not the granted one) and the holder renews and releases with its proof."""
    data = tmp_path / "data"
    async with serving(data) as running:
        app = await connect_as(data, "app")
        await log_in(app, "carol", 1003)
        held = await lease(app, "carol", "parser-1", ttl_s=30)
        before = await core_subjects(running, "carol")
        renewed = await request(app, "tgqr.session.carol.renew", held.body(ttl_s=3600))
        assert renewed["ok"], renewed
        assert renewed["expires_at"] > held.reply["expires_at"]
        assert await core_subjects(running, "carol") == before
        await app.close()

    async with serving(data) as running:
        app = await connect_as(data, "app")
        other = await lease_refusal(app, "carol")
        assert other["code"] == "leased"
        assert other["expires_at"] == renewed["expires_at"]
        again = await request(app, "tgqr.session.carol.renew", held.body())
        assert again["ok"], again
        assert (await request(app, "tgqr.session.carol.release", held.body()))["ok"]
        kinds = [e["type"] for e in await core_subjects(running, "carol")]
        assert kinds[len(before) :] == ["SessionReleased"]
        await app.close()


async def lease_refusal(app: Client, tenant: str) -> dict[str, Any]:
    """Another holder's lease request: the refusal's ``error``."""
    public = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    body = {"holder": "other", "public_key": base64.b64encode(public).decode(), "suite": "x25519"}
    reply = await request(app, f"tgqr.session.{tenant}.lease", body)
    assert reply["ok"] is False, reply
    error: dict[str, Any] = reply["error"]
    return error


async def test_wrong_proofs_cannot_spend_the_holders_budget(tmp_path: Path) -> None:
    """Another app spends alice's renew and release budget with wrong proofs (more than the
    per-minute limit): it gets ``rate_limited``, while the holder, proving its lease, still
    renews and releases (before: the tenant's one budget was spent, the holder's renewals
    were refused until its lease expired, and the thief leased the session)."""
    data = tmp_path / "data"
    async with serving(data) as running:
        holder, thief = await connect_as(data, "app"), await connect_as(data, "app")
        await log_in(holder, "dora", 1004)
        held = await lease(holder, "dora", "parser-1")
        seen = await read_lease_from_the_log(thief, running, "dora")
        wrong = base64.b64encode(secrets.token_bytes(32)).decode()
        codes: set[str] = set()
        for verb, most in (
            ("renew", SESSION_LIMITS["renew"]),
            ("release", SESSION_LIMITS["release"]),
        ):
            for _ in range(most + 1):
                body = {"lease_id": seen["lease_id"], "proof": wrong}
                reply = await request(thief, f"tgqr.session.dora.{verb}", body)
                codes.add(reply["error"]["code"])
        assert codes == {"lease_proof_invalid", "rate_limited"}
        renewed = await request(holder, "tgqr.session.dora.renew", held.body())
        assert renewed["ok"], renewed
        assert (await request(holder, "tgqr.session.dora.release", held.body()))["ok"]
        for nc in (holder, thief):
            await nc.close()
