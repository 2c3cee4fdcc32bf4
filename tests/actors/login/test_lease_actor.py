"""The login actor's leases with FakeTelegram, MemoryEventLog, a memory vault and a manual clock.

The manual clock's ``sleep`` waits until the test moves time on (:meth:`ManualClock.advance`), so
a lease's expiry happens exactly when the test says, never by accident; nothing sleeps for real.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import pytest
from cryptography.fernet import Fernet, MultiFernet

from actors.hpke import KeyPair, SealedOpenError, lease_info, proof_info
from actors.lease_store import LeaseRecord, MemoryLeaseStore
from actors.login import (
    PROOF_INVALID,
    ActorDeps,
    Command,
    CommandReply,
    Envelope,
    Lease,
    Logout,
    Mail,
    Mailbox,
    Release,
    Renew,
    Start,
    Validate,
    proof_digest,
    run_actor,
)
from actors.telegram import FakeTelegram
from actors.vault import MemorySessionVault
from events import ChainKey, Event, Head, QrIssued, SessionLeased
from events.memory import MemoryEventLog

pytestmark = pytest.mark.anyio

TENANT = "acme"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class ManualClock:
    """``now`` moves only by :meth:`advance`; ``sleep`` waits for that."""

    def __init__(self) -> None:
        self.now = T0
        self._waiting: list[tuple[datetime, anyio.Event]] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        due = self.now + timedelta(seconds=max(seconds, 0.0))
        if due <= self.now:
            await anyio.lowlevel.checkpoint()
            return
        entry = (due, anyio.Event())
        self._waiting.append(entry)
        try:
            await entry[1].wait()
        finally:
            if entry in self._waiting:
                self._waiting.remove(entry)

    def sleepers(self) -> int:
        return len(self._waiting)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        for entry in [e for e in self._waiting if e[0] <= self.now]:
            self._waiting.remove(entry)
            entry[1].set()


class PhoneLog(MemoryEventLog):
    """Scans each QR with the fake's phone as soon as it is stored; ``stored`` wakes waiters."""

    def __init__(self, fake: FakeTelegram) -> None:
        super().__init__(ChainKey(b"k" * 32))
        self.fake = fake
        self.changed = anyio.Event()

    async def append(self, tenant: str, events: Sequence[Event], head: Head) -> Head:
        new_head = await super().append(tenant, events, head)
        for event in events:
            if isinstance(event, QrIssued):
                self.fake.scan(user_id=1001, tenant=tenant)
        self.changed.set()
        self.changed = anyio.Event()
        return new_head


@dataclass
class Rig:
    clock: ManualClock = field(default_factory=ManualClock)

    def __post_init__(self) -> None:
        self.fake = FakeTelegram(clock=self.clock)
        self.log = PhoneLog(self.fake)
        self.vault = MemorySessionVault(MultiFernet([Fernet(Fernet.generate_key())]))
        self.leases = MemoryLeaseStore()  # the tgqr_leases bucket
        self.send, self.receive = anyio.create_memory_object_stream[Mail](16)
        self.done = anyio.Event()  # the current run of the actor returned (its tenant rests)
        self._wanted = anyio.Event()

    @property
    def deps(self) -> ActorDeps:
        return ActorDeps(
            log=self.log,
            telegram=self.fake,
            vault=self.vault,
            clock=self.clock,
            sleep=self.clock.sleep,
            random=lambda: 0.5,
            leases=self.leases,
        )

    async def run(self) -> None:
        """Like the supervisor: the actor runs until it rests, and again when mail comes."""
        while True:
            self.done = anyio.Event()
            await run_actor(TENANT, Mailbox(self.send, self.receive), self.deps)
            self.done.set()
            await self._wanted.wait()
            self._wanted = anyio.Event()

    def close(self) -> None:
        self.send.close()
        self.receive.close()

    async def ask(self, command: Command) -> CommandReply:
        replies: list[CommandReply] = []
        answered = anyio.Event()

        def reply(answer: CommandReply) -> None:
            replies.append(answer)
            answered.set()

        await self.send.send(Envelope(command, reply))
        self._wanted.set()
        with anyio.fail_after(5):
            await answered.wait()
        return replies[0]

    async def kinds(self) -> list[str]:
        return [type(r.event).__name__ for r in await self.log.read_tenant(TENANT)]

    async def wait_for(self, kind: str) -> None:
        with anyio.fail_after(5):
            while kind not in await self.kinds():
                await self.log.changed.wait()

    async def settle(self) -> None:
        """Until the lease timer sleeps (it waits on the clock)."""
        with anyio.fail_after(5):
            while self.clock.sleepers() == 0:
                await anyio.lowlevel.checkpoint()


@asynccontextmanager
async def authorized() -> AsyncIterator[Rig]:
    """An actor whose tenant logged in (user 1001), running for the block."""
    rig = Rig()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rig.run)
            await rig.ask(Start())
            await rig.wait_for("Authorized")
            yield rig
            tg.cancel_scope.cancel()
    finally:
        rig.close()


def lease(keys: KeyPair, holder: str = "parser-1", ttl_s: int = 60) -> Lease:
    return Lease(holder, keys.public_key, keys.suite, ttl_s)


def proof_of(keys: KeyPair, reply: CommandReply) -> bytes:
    """The holder's side: open the lease's sealed proof."""
    extra = reply.extra
    info = proof_info(TENANT, str(extra["lease_id"]), int(str(extra["fence"])))
    return keys.open(base64.b64decode(str(extra["proof_sealed"])), info)


def held(keys: KeyPair, reply: CommandReply, **more: object) -> dict[str, object]:
    """What renew and release need: the lease id and the proof (as the gateway passes them)."""
    return {"lease_id": str(reply.extra["lease_id"]), "proof": proof_of(keys, reply), **more}


@pytest.mark.parametrize("suite", ["mlkem768-x25519", "x25519"])
async def test_a_lease_hands_out_the_session_sealed_to_the_holder(
    suite: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The reply names lease_id, fence, expiry, user and DC; ``sealed`` opens with the holder's
    key under the lease's info to the stored session, and under nothing else."""
    caplog.set_level(logging.DEBUG)
    keys = KeyPair.generate(suite)
    async with authorized() as rig:
        reply = await rig.ask(lease(keys))
        assert reply.ok, reply
        extra = dict(reply.extra)
        assert set(extra) == {
            "tenant", "lease_id", "fence", "expires_at", "user_id", "dc_id", "suite", "sealed",
            "proof_sealed", "proof_digest", "device",
        }  # fmt: skip
        assert (extra["user_id"], extra["suite"]) == (1001, suite)
        assert extra["device"] == {
            "device_model": "tgqr", "system_version": "Linux", "app_version": "1.0",
            "lang_code": "en", "system_lang_code": "en",
        }  # fmt: skip
        assert extra["expires_at"] == T0 + timedelta(seconds=60)
        sealed = base64.b64decode(str(extra["sealed"]))
        info = lease_info(TENANT, str(extra["lease_id"]), int(str(extra["fence"])))
        entry = await rig.vault.get(TENANT)
        assert entry is not None
        assert keys.open(sealed, info).decode() == entry.session
        with pytest.raises(SealedOpenError):
            keys.open(sealed, lease_info(TENANT, "other", int(str(extra["fence"]))))
        with pytest.raises(SealedOpenError):
            KeyPair.generate(suite).open(sealed, info)
        proof = proof_of(keys, reply)
        assert len(proof) == 32
        proof_sealed = base64.b64decode(str(extra["proof_sealed"]))
        with pytest.raises(SealedOpenError):  # neither sealed value stands in for the other
            keys.open(sealed, proof_info(TENANT, str(extra["lease_id"]), int(str(extra["fence"]))))
        with pytest.raises(SealedOpenError):
            keys.open(proof_sealed, info)
        records = await rig.log.read_tenant(TENANT)
        stored = b"".join(r.data for r in records)
        granted = records[-1].event
        assert isinstance(granted, SessionLeased)
        assert granted.proof_digest == proof_digest(TENANT, granted.lease_id, proof)
        for secret in (
            entry.session.encode(),
            proof,
            base64.b64encode(proof),
            proof.hex().encode(),
        ):
            assert secret not in stored
        assert entry.session not in caplog.text
        assert base64.b64encode(proof).decode() not in caplog.text
        assert "SessionLeased tenant=acme" in caplog.text


async def test_a_lease_keeps_the_actor_and_expires_on_its_timer() -> None:
    """While leased the actor does not rest; at expires_at its timer ends the lease
    (SessionReleased(expired)) and then the actor rests."""
    keys = KeyPair.generate("x25519")
    async with authorized() as rig:
        first = await rig.ask(lease(keys, ttl_s=60))
        await rig.settle()
        assert not rig.done.is_set()
        refused = await rig.ask(lease(keys, holder="other"))
        assert refused.error_code == "leased"
        assert refused.extra == {"holder": "parser-1", "expires_at": T0 + timedelta(seconds=60)}
        rig.clock.advance(60)
        await rig.wait_for("SessionReleased")
        with anyio.fail_after(5):
            await rig.done.wait()
        events = [r.event for r in await rig.log.read_tenant(TENANT)]
        assert [type(e).__name__ for e in events][-2:] == ["SessionLeased", "SessionReleased"]
        assert getattr(events[-1], "reason", None) == "expired"
        assert first.ok


async def test_renew_moves_the_timer_without_an_event_and_a_late_renew_is_lost() -> None:
    """A renewal with the proof keeps the fence and pushes the expiry: no event is appended,
    the lease store holds the new expiry, and the old timer does not end the lease; after the
    expiry a renew is lease_lost and a new lease gets a higher fence."""
    keys = KeyPair.generate("x25519")
    async with authorized() as rig:
        first = await rig.ask(lease(keys, ttl_s=60))
        lease_id, fence = first.extra["lease_id"], first.extra["fence"]
        await rig.settle()
        before = await rig.kinds()
        rig.clock.advance(50)
        renewed = await rig.ask(Renew(**held(keys, first)))  # type: ignore[arg-type]
        assert dict(renewed.extra) == {
            "lease_id": lease_id,
            "fence": fence,
            "expires_at": T0 + timedelta(seconds=110),
        }
        assert await rig.kinds() == before  # no event for a renewal
        stored = await rig.leases.get(TENANT)
        assert stored is not None
        assert stored.record == LeaseRecord(
            lease_id=str(lease_id), fence=int(str(fence)), expires_at=T0 + timedelta(seconds=110)
        )
        rig.clock.advance(20)  # past the first expiry, before the renewed one
        validated = await rig.ask(Validate())  # a no-op round trip through the loop
        assert validated.ok
        assert "SessionReleased" not in await rig.kinds()
        rig.clock.advance(40)
        await rig.wait_for("SessionReleased")
        late = await rig.ask(Renew(**held(keys, first)))  # type: ignore[arg-type]
        assert late.error_code == "lease_lost"
        second = await rig.ask(lease(keys, holder="other"))
        assert int(str(second.extra["fence"])) > int(str(fence))


async def test_without_the_proof_nobody_renews_releases_or_revokes() -> None:
    """Another app knows lease_id and fence (the log is readable): renew, release and a
    revoked release with no proof, a wrong one, or the proof of an earlier lease are
    lease_proof_invalid; nothing is appended, the store is untouched, the session stays; the
    holder's own renew and release then work."""
    keys = KeyPair.generate("x25519")
    async with authorized() as rig:
        earlier = await rig.ask(lease(keys, ttl_s=60))
        assert (await rig.ask(Release(**held(keys, earlier)))).ok  # type: ignore[arg-type]
        current = await rig.ask(lease(keys, ttl_s=60))
        lease_id = str(current.extra["lease_id"])
        kinds = await rig.kinds()
        for proof in (b"", b"\x00" * 32, proof_of(keys, earlier)):
            for command in (
                Renew(lease_id, proof=proof),
                Renew(lease_id, ttl_s=3600, proof=proof),
                Release(lease_id, proof=proof),
                Release(lease_id, revoked=True, proof=proof),
            ):
                reply = await rig.ask(command)
                assert reply.error_code == PROOF_INVALID, reply
        assert await rig.kinds() == kinds
        assert await rig.leases.get(TENANT) is not None  # the earlier lease's end only
        stored = await rig.leases.get(TENANT)
        assert stored is not None
        assert stored.record.lease_id != lease_id
        assert await rig.vault.get(TENANT) is not None
        assert (await rig.ask(lease(keys, holder="thief"))).error_code == "leased"
        assert (await rig.ask(Renew(**held(keys, current)))).ok  # type: ignore[arg-type]
        assert (await rig.ask(Release(**held(keys, current)))).ok  # type: ignore[arg-type]
        assert (await rig.kinds())[-1] == "SessionReleased"


async def test_a_renewal_survives_a_restart() -> None:
    """Renewed (no event), then the actor restarts: it hydrates the lease from the log and
    its renewed expiry from the store; past the granted expiry the lease still runs, until
    the renewed one."""
    keys = KeyPair.generate("x25519")
    async with authorized() as rig:
        first = await rig.ask(lease(keys, ttl_s=60))
        await rig.settle()
        rig.clock.advance(50)
        assert (await rig.ask(Renew(**held(keys, first)))).ok  # type: ignore[arg-type]
    fresh = Rig(clock=rig.clock)
    fresh.log, fresh.vault, fresh.leases = rig.log, rig.vault, rig.leases
    with fresh.send, fresh.receive, anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(fresh.run)
            await fresh.settle()
            fresh.clock.advance(20)  # t=70: past the grant's 60, before the renewal's 110
            refused = await fresh.ask(lease(keys, holder="other"))
            assert refused.error_code == "leased"
            assert refused.extra["expires_at"] == T0 + timedelta(seconds=110)
            assert "SessionReleased" not in await fresh.kinds()
            renewed = await fresh.ask(Renew(**held(keys, first)))  # type: ignore[arg-type]
            assert renewed.extra["expires_at"] == T0 + timedelta(seconds=130)
            fresh.clock.advance(60)
            await fresh.wait_for("SessionReleased")
            tg.cancel_scope.cancel()
        scope.cancel()


async def test_two_actors_of_one_tenant_agree_through_the_store() -> None:
    """Two instances' actors of one tenant (one log, one store): a renewal through one is
    adopted by the other when its own view runs out (no expiry, no grant over it); once the
    holder released through the second, a renewal through the first (stale) is lease_lost."""
    keys = KeyPair.generate("x25519")
    async with authorized() as one:
        first = await one.ask(lease(keys, ttl_s=60))
        two = Rig(clock=one.clock)
        two.log, two.vault, two.leases = one.log, one.vault, one.leases
        with two.send, two.receive:
            async with anyio.create_task_group() as tg:
                tg.start_soon(two.run)
                await two.settle()  # hydrated: expiry 60 in its view
                one.clock.advance(50)
                assert (await one.ask(Renew(**held(keys, first)))).ok  # type: ignore[arg-type]
                one.clock.advance(15)  # t=65: two's own view ran out; the store says 110
                refused = await two.ask(lease(keys, holder="thief"))
                assert refused.error_code == "leased"
                assert refused.extra["expires_at"] == T0 + timedelta(seconds=110)
                assert "SessionReleased" not in await two.kinds()
                assert (await two.ask(Release(**held(keys, first)))).ok  # type: ignore[arg-type]
                lost = await one.ask(Renew(**held(keys, first)))  # type: ignore[arg-type]
                assert lost.error_code == "lease_lost"
                tg.cancel_scope.cancel()


async def test_a_lapsed_lease_ends_when_the_next_command_arrives() -> None:
    """A command after expires_at (its timer not yet run) first ends the lease as expired."""
    keys = KeyPair.generate("x25519")
    async with authorized() as rig:
        first = await rig.ask(lease(keys, ttl_s=60))
        rig.clock.now += timedelta(seconds=61)  # the timer has not woken yet
        reply = await rig.ask(lease(keys, holder="other"))
        assert reply.ok
        assert reply.extra["lease_id"] != first.extra["lease_id"]
        kinds = await rig.kinds()
        assert kinds[-3:] == ["SessionLeased", "SessionReleased", "SessionLeased"]


async def test_validation_pauses_while_leased() -> None:
    """Validate while leased opens no Telegram client (connect would fail here)."""
    keys = KeyPair.generate("x25519")
    async with authorized() as rig:
        await rig.ask(lease(keys))
        rig.fake.fail_next("connect", RuntimeError("the service used a leased session"))
        assert (await rig.ask(Validate())).ok
        assert (await rig.ask(Validate())).ok


async def test_logout_and_revoked_release_end_the_lease_first() -> None:
    """logout while leased: SessionReleased(logout), LoggedOut(command); a revoked release:
    SessionReleased(revoked), LoggedOut(revoked), the session dropped from the vault."""
    keys = KeyPair.generate("x25519")
    async with authorized() as rig:
        await rig.ask(lease(keys))
        assert (await rig.ask(Logout())).ok
        events = [r.event for r in await rig.log.read_tenant(TENANT)]
        assert [(type(e).__name__, getattr(e, "reason", "")) for e in events[-2:]] == [
            ("SessionReleased", "logout"),
            ("LoggedOut", "command"),
        ]
    async with authorized() as rig:
        granted = await rig.ask(lease(keys))
        reply = await rig.ask(Release(**held(keys, granted, revoked=True)))  # type: ignore[arg-type]
        assert reply.ok
        events = [r.event for r in await rig.log.read_tenant(TENANT)]
        assert [(type(e).__name__, getattr(e, "reason", "")) for e in events[-3:]] == [
            ("SessionReleased", "revoked"),
            ("SessionRevoked", ""),  # noticed by the holder
            ("LoggedOut", "revoked"),
        ]
        assert getattr(events[-2], "noticed_by", "") == "holder"
        assert await rig.vault.get(TENANT) is None
        assert (await rig.ask(lease(keys))).error_code == "not_authorized"


async def test_no_lease_without_a_stored_session() -> None:
    """Authorized in the log but nothing in the vault: not_authorized, no lease recorded."""
    keys = KeyPair.generate("x25519")
    async with authorized() as rig:
        await rig.vault.delete(TENANT)
        reply = await rig.ask(lease(keys))
        assert reply.error_code == "not_authorized"
        assert "SessionLeased" not in await rig.kinds()


async def test_a_restarted_actor_keeps_the_lease_and_its_timer() -> None:
    """An actor hydrated from a leased log stays up and still ends the lease on time."""
    keys = KeyPair.generate("x25519")
    async with authorized() as rig:
        await rig.ask(lease(keys, ttl_s=60))
    fresh = Rig(clock=rig.clock)
    fresh.log, fresh.vault = rig.log, rig.vault
    with fresh.send, fresh.receive, anyio.CancelScope() as scope:
        await _expire_after_restart(fresh, keys)
        scope.cancel()


async def _expire_after_restart(fresh: Rig, keys: KeyPair) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(fresh.run)
        await fresh.settle()
        assert not fresh.done.is_set()
        refused = await fresh.ask(lease(keys, holder="other"))
        assert refused.error_code == "leased"
        fresh.clock.advance(60)
        with anyio.fail_after(5):
            await fresh.done.wait()
        assert (await fresh.kinds())[-1] == "SessionReleased"
        assert isinstance((await fresh.log.read_tenant(TENANT))[-2].event, SessionLeased)
        tg.cancel_scope.cancel()
