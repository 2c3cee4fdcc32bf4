"""What an app does by hand with a lease (no tgqr code: nats-py, cryptography, Telethon)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from nats.aio.client import Client
from telethon import TelegramClient
from telethon.sessions import StringSession

from actors.service import NatsServer
from actors.sim import Simulator
from actors.telegram import SIMULATOR_API_HASH, SIMULATOR_API_ID

from .conftest import Driver

_SUITES = {
    "mlkem768-x25519": hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305
    ),
    "x25519": hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
}


@dataclass
class App:
    """What an app does by hand: a key pair, the request, HPKE open (no tgqr code). It keeps
    each lease's proof (opened from ``proof_sealed``) for :meth:`held`."""

    nc: Client
    replies: list[bytes]
    proofs: dict[str, bytes] = field(default_factory=dict)

    def held(self, lease_id: str, **more: Any) -> dict[str, Any]:
        """A renew or release body for ``lease_id`` with its proof."""
        proof = base64.b64encode(self.proofs[lease_id]).decode()
        return {"lease_id": lease_id, "proof": proof, **more}

    async def ask(self, tenant: str, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        msg = await self.nc.request(
            f"tgqr.session.{tenant}.{verb}", json.dumps(body).encode(), timeout=20
        )
        self.replies.append(msg.data)
        reply: dict[str, Any] = json.loads(msg.data)
        return reply

    async def lease(
        self, tenant: str, holder: str, *, suite: str = "mlkem768-x25519", ttl_s: int = 300
    ) -> tuple[dict[str, Any], str | None]:
        """The reply, and the session it seals (None when refused)."""
        if suite == "x25519":
            private: Any = x25519.X25519PrivateKey.generate()
            public = private.public_key().public_bytes_raw()
        else:
            m, x = mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate()
            private = hpke.MLKEM768X25519PrivateKey(m, x)
            public = m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
        body = {
            "holder": holder,
            "public_key": base64.b64encode(public).decode(),
            "suite": suite,
            "ttl_s": ttl_s,
        }
        reply = await self.ask(tenant, "lease", body)
        if not reply["ok"]:
            return reply, None
        bound = f"{tenant}|{reply['lease_id']}|{reply['fence']}"
        sealed = base64.b64decode(reply["sealed"], validate=True)
        proof_sealed = base64.b64decode(reply["proof_sealed"], validate=True)
        proof_info = f"tgqr-lease-proof|{bound}".encode()
        self.proofs[reply["lease_id"]] = _SUITES[suite].decrypt(proof_sealed, private, proof_info)
        return reply, _SUITES[suite].decrypt(
            sealed, private, f"tgqr-lease|{bound}".encode()
        ).decode()


async def get_me(session: str) -> int | None:
    """Telethon, restored from ``session`` against the simulator: the logged-in user id (None:
    the session is not logged in)."""
    Simulator.register_with_telethon()
    client = TelegramClient(StringSession(session), SIMULATOR_API_ID, SIMULATOR_API_HASH)
    await client.connect()
    try:
        me = await client.get_me()
        return None if me is None else int(me.id)
    finally:
        await client.disconnect()


async def log_in(driver: Driver, tenant: str, user_id: int) -> None:
    assert (await driver.command(tenant, "start"))["ok"]
    await driver.wait_for(tenant, "QrIssued")
    assert (await driver.scan(tenant, user_id))["ok"]
    await driver.wait_for(tenant, "Authorized")


async def run_cli(nats_server: NatsServer, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``tgqr ARGS --nats URL`` in a child process, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
    env["TGQR_LOG_LEVEL"] = "WARNING"
    with anyio.fail_after(60):
        return await anyio.run_process(
            [sys.executable, "-m", "actors.cli", *args, "--nats", nats_server.url],
            check=False,
            env=env,
            cwd=Path(__file__).resolve().parents[3],
        )
