"""The login actor end to end: real Telethon against the simulator, real JetStream log.

Wall clock and real sleep; the "phone" scans from hooks on stored events.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import pytest
from cryptography.fernet import Fernet, MultiFernet
from nats.js import JetStreamContext

from actors.login import (
    ActorDeps,
    CommandReply,
    Envelope,
    Mail,
    Mailbox,
    Password,
    Policy,
    Start,
    run_actor,
)
from actors.sim import Simulator
from actors.telegram import TelethonTelegram
from actors.vault import MemorySessionVault
from events import ChainKey, Event, Head, PasswordRequired, QrIssued
from events.jetstream import JetStreamEventLog, ensure_stream

pytestmark = pytest.mark.anyio

TENANT = "e2e"
PASSWORD = "e2e secret pw"


class HookedJetStreamLog(JetStreamEventLog):
    """The real JetStream log, calling hooks for each stored event."""

    hooks: list[Callable[[Event], None]]

    async def append(self, tenant: str, events: Sequence[Event], head: Head) -> Head:
        new_head = await super().append(tenant, events, head)
        for event in events:
            for hook in list(self.hooks):
                hook(event)
        return new_head


@dataclass
class E2E:
    sim: Simulator
    log: HookedJetStreamLog
    replies: list[CommandReply] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.vault = MemorySessionVault(MultiFernet([Fernet(Fernet.generate_key())]))
        self.telegram = TelethonTelegram.for_simulator(self.sim)
        self.send, self.receive = anyio.create_memory_object_stream[Mail](8)
        self.mailbox = Mailbox(self.send, self.receive)

    def deps(self, policy: Policy) -> ActorDeps:
        return ActorDeps(
            log=self.log,
            telegram=self.telegram,
            vault=self.vault,
            clock=lambda: datetime.now(UTC),
            sleep=anyio.sleep,
            random=random.random,
            policy=policy,
        )

    def command(self, command: Start | Password) -> None:
        self.send.send_nowait(Envelope(command, self.replies.append))

    def on(self, kind: type[Event], action: Callable[[Event], None]) -> None:
        def hook(event: Event) -> None:
            if isinstance(event, kind):
                self.log.hooks.remove(hook)
                action(event)

        self.log.hooks.append(hook)

    def scan_on_qr(self, user_id: int, **kw: object) -> None:
        def scan(event: Event) -> None:
            assert isinstance(event, QrIssued)
            self.sim.scan(user_id=user_id, url=event.url, **kw)  # type: ignore[arg-type]

        self.on(QrIssued, scan)

    async def run(self, policy: Policy | None = None) -> None:
        with anyio.fail_after(15):
            await run_actor(TENANT, self.mailbox, self.deps(policy or Policy()))

    async def kinds(self) -> list[str]:
        return [type(r.event).__name__ for r in await self.log.read_tenant(TENANT)]


async def _rig(js: JetStreamContext, token_ttl_s: float) -> AsyncIterator[E2E]:
    await ensure_stream(js)
    log = HookedJetStreamLog(js, ChainKey(b"e" * 32))
    log.hooks = []
    sim = Simulator(token_ttl_s=token_ttl_s)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        rig = E2E(sim, log)
        try:
            yield rig
        finally:
            rig.send.close()
            rig.receive.close()
            tg.cancel_scope.cancel()


@pytest.fixture
async def e2e(js: JetStreamContext) -> AsyncIterator[E2E]:
    async for rig in _rig(js, 30.0):
        yield rig


@pytest.fixture
async def e2e_short(js: JetStreamContext) -> AsyncIterator[E2E]:
    async for rig in _rig(js, 1.0):
        yield rig


async def test_plain_login(e2e: E2E) -> None:
    """Telethon + simulator + JetStream: QR, scan, Authorized, session in the vault."""
    e2e.scan_on_qr(7)
    e2e.command(Start())
    await e2e.run()
    assert await e2e.kinds() == ["LoginStarted", "QrIssued", "Scanned", "Authorized"]
    entry = await e2e.vault.get(TENANT)
    assert entry is not None
    assert entry.stage == "authorized"
    assert e2e.sim.statistics().open_connections == 0


async def test_two_factor(e2e: E2E) -> None:
    """2FA with real SRP: PasswordRequired, the password command, Authorized."""
    e2e.sim.add_user(7, password=PASSWORD, hint="hint")
    e2e.scan_on_qr(7)
    e2e.on(PasswordRequired, lambda _: e2e.command(Password(PASSWORD)))
    e2e.command(Start())
    await e2e.run()
    kinds = await e2e.kinds()
    assert kinds[-2:] == ["PasswordRequired", "Authorized"]
    data = b"".join(r.data for r in await e2e.log.read_tenant(TENANT))
    assert PASSWORD.encode() not in data


async def test_migration(e2e: E2E) -> None:
    """An account on DC 2: the actor imports the token there and authorizes."""
    e2e.sim.add_user(9, dc_id=2)
    e2e.scan_on_qr(9)
    e2e.command(Start())
    await e2e.run()
    records = await e2e.log.read_tenant(TENANT)
    last = records[-1].event
    assert type(last).__name__ == "Authorized"
    assert getattr(last, "dc_id", None) == 2


async def test_expiry_with_short_ttl(e2e_short: E2E) -> None:
    """ttl_s=2 with 1 s tokens: several QRs, then Expired at the deadline."""
    e2e_short.command(Start(ttl_s=2))
    await e2e_short.run()
    kinds = await e2e_short.kinds()
    assert kinds[-1] == "Expired"
    assert kinds.count("QrIssued") >= 2


async def test_resume_after_cancel_while_waiting_for_the_password(e2e: E2E) -> None:
    """Cancelled in password_required: the restarted actor restores the pre-auth session."""
    e2e.sim.add_user(7, password=PASSWORD)
    e2e.scan_on_qr(7)
    reached = anyio.Event()
    e2e.on(PasswordRequired, lambda _: reached.set())
    e2e.command(Start())
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_actor, TENANT, e2e.mailbox, e2e.deps(Policy()))
            await reached.wait()
            tg.cancel_scope.cancel()
    e2e.command(Password(PASSWORD))
    await e2e.run()
    kinds = await e2e.kinds()
    assert kinds[-2:] == ["PasswordRequired", "Authorized"]
    assert kinds.count("QrIssued") == 1
    assert e2e.replies[-1].state == "authorized"
