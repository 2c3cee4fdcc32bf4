"""The login actor with FakeTelegram, MemoryEventLog, MemorySessionVault and a virtual clock.

The virtual clock's ``sleep`` advances time and yields, so a 600 s attempt runs instantly. The
"phone" acts from hooks on stored events (scan when a QR is issued, send a password when one
is required), so every flow is deterministic and the actor returns once its tenant rests.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from cryptography.fernet import Fernet, MultiFernet

from actors.login import (
    ActorDeps,
    Cancel,
    CommandReply,
    Envelope,
    Logout,
    Mail,
    Mailbox,
    Password,
    Policy,
    Start,
    Validate,
    run_actor,
)
from actors.telegram import FakeTelegram
from actors.vault import MemorySessionVault
from events import (
    Authorized,
    ChainKey,
    ConcurrencyConflictError,
    Event,
    FloodWaited,
    Head,
    LoggedOut,
    LoginFailed,
    LoginStarted,
    PasswordRejected,
    PasswordRequired,
    QrIssued,
    Scanned,
    TenantQuarantinedError,
    seal,
)
from events.memory import MemoryEventLog

pytestmark = pytest.mark.anyio

TENANT = "acme"
PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHAIN_KEY = ChainKey(b"k" * 32)


class VirtualClock:
    """``now`` for the actor and the fake; ``sleep`` jumps forward and yields."""

    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=max(seconds, 0.0))
        await anyio.lowlevel.checkpoint()


class HookedLog(MemoryEventLog):
    """A MemoryEventLog that calls hooks for each stored event (the test's "phone")."""

    def __init__(self) -> None:
        super().__init__(CHAIN_KEY)
        self.hooks: list[Callable[[Event], None]] = []
        self.last_head = Head()

    async def append(self, tenant: str, events: Sequence[Event], head: Head) -> Head:
        new_head = self.last_head = await super().append(tenant, events, head)
        for event in events:
            for hook in list(self.hooks):
                hook(event)
        return new_head


_OPEN: list[Rig] = []


@pytest.fixture(autouse=True)
def _close_rigs() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@dataclass
class Rig:
    clock: VirtualClock = field(default_factory=VirtualClock)
    policy: Policy = field(default_factory=Policy)
    replies: list[CommandReply] = field(default_factory=list)
    log: HookedLog = field(default_factory=HookedLog)

    def __post_init__(self) -> None:
        self.fake = FakeTelegram(clock=self.clock)
        self.vault = MemorySessionVault(MultiFernet([Fernet(Fernet.generate_key())]))
        send, receive = anyio.create_memory_object_stream[Mail](16)
        self.send: MemoryObjectSendStream[Mail] = send
        self.receive: MemoryObjectReceiveStream[Mail] = receive
        self.mailbox = Mailbox(send, receive)
        _OPEN.append(self)

    def close(self) -> None:
        self.send.close()
        self.receive.close()

    @property
    def deps(self) -> ActorDeps:
        return ActorDeps(
            log=self.log,
            telegram=self.fake,
            vault=self.vault,
            clock=self.clock,
            sleep=self.clock.sleep,
            random=lambda: 0.5,
            policy=self.policy,
        )

    def command(self, command: Start | Password | Cancel | Logout | Validate) -> None:
        self.send.send_nowait(Envelope(command, self.replies.append, trace="00-trace"))

    def on(self, kind: type[Event], action: Callable[[Event], None], *, once: bool = True) -> None:
        def hook(event: Event) -> None:
            if isinstance(event, kind):
                if once:
                    self.log.hooks.remove(hook)
                action(event)

        self.log.hooks.append(hook)

    def scan_on_qr(
        self, user_id: int = 7, *, nth: int = 1, attempt: int | None = None, **kw: object
    ) -> None:
        seen = [0]

        def scan(event: Event) -> None:
            if attempt is not None and event.attempt != attempt:
                return
            seen[0] += 1
            if seen[0] == nth:
                self.fake.scan(user_id=user_id, tenant=TENANT, **kw)  # type: ignore[arg-type]

        self.on(QrIssued, scan, once=False)

    async def run(self) -> None:
        with anyio.fail_after(5):
            await run_actor(TENANT, self.mailbox, self.deps)

    async def events(self) -> list[Event]:
        return [r.event for r in await self.log.read_tenant(TENANT)]

    async def kinds(self) -> list[str]:
        return [type(e).__name__ for e in await self.events()]

    async def stored_bytes(self) -> bytes:
        return b"".join(r.data for r in await self.log.read_tenant(TENANT))


def assert_no_secret(blob: bytes, text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret.encode() not in blob
        assert secret not in text


# --- plain flows -----------------------------------------------------------------------------


async def test_plain_login(caplog: pytest.LogCaptureFixture) -> None:
    """start, QR, scan, Authorized: the session is in the vault, only its fingerprint logged."""
    caplog.set_level(logging.DEBUG)
    rig = Rig()
    rig.scan_on_qr()
    rig.command(Start())
    await rig.run()
    assert await rig.kinds() == ["LoginStarted", "QrIssued", "Scanned", "Authorized"]
    events = await rig.events()
    assert all(e.trace == "00-trace" for e in events[:1])
    assert rig.replies[0].to_json() == {
        "ok": True,
        "tenant": TENANT,
        "attempt": 1,
        "state": "pending",
    }
    entry = await rig.vault.get(TENANT)
    assert entry is not None
    assert entry.stage == "authorized"
    authorized = events[-1]
    assert isinstance(authorized, Authorized)
    assert authorized.user_id == 7
    assert rig.fake.statistics().open_clients == 0
    assert_no_secret(await rig.stored_bytes(), caplog.text, entry.session)
    assert "Authorized tenant=acme attempt=1" in caplog.text


async def test_early_scan_before_the_watcher_runs_is_not_lost() -> None:
    """A scan right when the first QR is stored is still reported (the watcher sees it)."""
    rig = Rig()
    rig.on(QrIssued, lambda _: rig.fake.scan(user_id=9, tenant=TENANT))
    rig.command(Start())
    await rig.run()
    assert await rig.kinds() == ["LoginStarted", "QrIssued", "Scanned", "Authorized"]


async def test_token_refresh_cadence() -> None:
    """Without a scan a QR is issued every token_ttl - 3 s until the deadline expires it."""
    rig = Rig()
    rig.command(Start(ttl_s=120))
    await rig.run()
    events = await rig.events()
    qrs = [e for e in events if isinstance(e, QrIssued)]
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(qrs)]
    assert len(qrs) == 5  # t = 0, 27, 54, 81, 108
    assert all(gap == pytest.approx(27.0) for gap in gaps)
    assert type(events[-1]).__name__ == "Expired"
    assert events[-1].at == T0 + timedelta(seconds=120)
    assert rig.fake.statistics().open_clients == 0


async def test_ttl_expiry_closes_the_client() -> None:
    """At the deadline: Expired, the client is disconnected, the actor returns."""
    rig = Rig()
    rig.command(Start())
    await rig.run()
    kinds = await rig.kinds()
    assert kinds[-1] == "Expired"
    assert kinds.count("QrIssued") == 23  # 600 s / 27 s
    assert rig.clock.now == T0 + timedelta(seconds=600)
    assert rig.fake.statistics().open_clients == 0


async def test_migration_to_the_users_dc() -> None:
    """An account on DC 2: the second export migrates, the import authorizes on DC 2."""
    rig = Rig()
    rig.fake.add_user(7, dc_id=2)
    rig.scan_on_qr()
    rig.command(Start())
    await rig.run()
    events = await rig.events()
    assert isinstance(events[-1], Authorized)
    assert events[-1].dc_id == 2
    assert rig.fake.statistics().imports == 1


async def test_migration_with_an_expired_token_re_exports() -> None:
    """TokenExpired on import: export again (on the new DC), a new QR, scan, success."""
    rig = Rig()
    rig.fake.add_user(7, dc_id=2)
    rig.scan_on_qr()
    rig.scan_on_qr(nth=2)
    # The import comes 31 s after the export: make the export after the scan slow.
    rig.fake.flood_next("auth.importLoginToken", 35)
    rig.command(Start())
    await rig.run()
    kinds = await rig.kinds()
    assert kinds[-1] == "Authorized"
    assert kinds.count("QrIssued") == 2
    assert "FloodWaited" in kinds


# --- 2FA -------------------------------------------------------------------------------------


def password_rig(*answers: str) -> Rig:
    rig = Rig()
    rig.fake.add_user(7, password=PASSWORD, hint="horse")
    rig.scan_on_qr()
    queue = list(answers)

    def answer(_: Event) -> None:
        if queue:
            rig.command(Password(queue.pop(0)))

    rig.on(PasswordRequired, answer)
    rig.on(PasswordRejected, answer, once=False)
    return rig


async def test_two_factor_right_password(caplog: pytest.LogCaptureFixture) -> None:
    """PasswordRequired(hint), the pre-auth session in the vault, then Authorized."""
    caplog.set_level(logging.DEBUG)
    rig = password_rig(PASSWORD)
    rig.command(Start())
    await rig.run()
    events = await rig.events()
    assert [type(e).__name__ for e in events][-2:] == ["PasswordRequired", "Authorized"]
    required = events[-2]
    assert isinstance(required, PasswordRequired)
    assert required.hint == "horse"
    assert rig.replies[-1].state == "authorized"
    entry = await rig.vault.get(TENANT)
    assert entry is not None
    assert entry.stage == "authorized"
    assert_no_secret(await rig.stored_bytes(), caplog.text, PASSWORD, entry.session)


async def test_two_factor_wrong_then_right() -> None:
    """A wrong password: PasswordRejected(4), the next one authorizes."""
    rig = password_rig("nope", PASSWORD)
    rig.command(Start())
    await rig.run()
    events = await rig.events()
    rejected = [e for e in events if isinstance(e, PasswordRejected)]
    assert [e.tries_left for e in rejected] == [4]
    assert isinstance(events[-1], Authorized)
    assert [r.state for r in rig.replies] == ["pending", "password_required", "authorized"]


async def test_five_wrong_passwords_fail(caplog: pytest.LogCaptureFixture) -> None:
    """Five wrong passwords: LoginFailed(password_attempts), the pre-auth session is dropped."""
    caplog.set_level(logging.DEBUG)
    rig = password_rig(*(f"wrong-{i}" for i in range(5)))
    rig.command(Start())
    await rig.run()
    events = await rig.events()
    assert [e.tries_left for e in events if isinstance(e, PasswordRejected)] == [4, 3, 2, 1, 0]
    assert isinstance(events[-1], LoginFailed)
    assert events[-1].reason == "password_attempts"
    assert await rig.vault.get(TENANT) is None
    assert rig.fake.statistics().open_clients == 0
    assert_no_secret(await rig.stored_bytes(), caplog.text, *(f"wrong-{i}" for i in range(5)))


async def test_password_when_not_required_is_wrong_state() -> None:
    """password while pending: wrong_state, no event."""
    rig = Rig()
    rig.on(QrIssued, lambda _: rig.command(Password("x")))
    rig.command(Start(ttl_s=10))
    await rig.run()
    assert rig.replies[1].to_json()["error"]["code"] == "wrong_state"
    assert "PasswordRejected" not in await rig.kinds()


# --- flood waits -----------------------------------------------------------------------------


async def test_flood_wait_under_the_cap_waits_then_continues() -> None:
    """FloodWaited(20), then the export is retried no earlier than 20 s * 1.1 later."""
    rig = Rig()
    rig.fake.flood_next("auth.exportLoginToken", 20)
    rig.scan_on_qr()
    rig.command(Start())
    await rig.run()
    events = await rig.events()
    flood = events[1]
    assert isinstance(flood, FloodWaited)
    assert (flood.seconds, flood.method) == (20, "auth.exportLoginToken")
    qr = events[2]
    assert isinstance(qr, QrIssued)
    assert (qr.at - flood.at).total_seconds() >= 20 * 1.1
    assert flood.retry_at == flood.at + timedelta(seconds=24)  # random 0.5 -> jitter 0.2
    assert isinstance(events[-1], Authorized)


@pytest.mark.parametrize(("seconds", "ttl"), [(61, 600), (30, 20)])
async def test_flood_wait_over_cap_or_past_deadline_fails(seconds: int, ttl: int) -> None:
    """Over 60 s, or not fitting before the deadline: FloodWaited(None), LoginFailed."""
    rig = Rig()
    rig.fake.flood_next("auth.exportLoginToken", seconds)
    rig.command(Start(ttl_s=ttl))
    await rig.run()
    events = await rig.events()
    assert [type(e).__name__ for e in events] == ["LoginStarted", "FloodWaited", "LoginFailed"]
    assert isinstance(events[1], FloodWaited)
    assert events[1].retry_at is None
    assert rig.fake.statistics().open_clients == 0


# --- ownership, idempotency, cancel, logout, validate ------------------------------------------


async def test_ownership_mismatch_logs_out_and_stores_nothing() -> None:
    """expected_user_id 7, user 8 scans: LoginFailed(ownership_mismatch), nothing stored."""
    rig = Rig()
    rig.scan_on_qr(user_id=8)
    rig.command(Start(expected_user_id=7))
    await rig.run()
    events = await rig.events()
    assert isinstance(events[-1], LoginFailed)
    assert events[-1].reason == "ownership_mismatch"
    assert await rig.vault.get(TENANT) is None
    assert rig.fake.statistics().open_clients == 0


async def test_start_is_idempotent_and_force_replaces() -> None:
    """A second start answers the live attempt; a forced one cancels it and starts attempt 2."""
    rig = Rig()
    qrs = [0]

    def on_qr(_: Event) -> None:
        qrs[0] += 1
        if qrs[0] == 1:
            rig.command(Start())
            rig.command(Start(force=True))

    rig.on(QrIssued, on_qr, once=False)
    rig.scan_on_qr(attempt=2)
    rig.command(Start())
    await rig.run()
    events = await rig.events()
    kinds = [type(e).__name__ for e in events]
    cut = kinds.index("LoginCancelled")
    assert set(kinds[1:cut]) == {"QrIssued"}
    assert kinds[cut:] == ["LoginCancelled", "LoginStarted", "QrIssued", "Scanned", "Authorized"]
    assert [e.attempt for e in events[cut:]] == [1, 2, 2, 2, 2]
    assert [(r.attempt, r.state) for r in rig.replies] == [
        (1, "pending"),
        (1, "pending"),
        (2, "pending"),
    ]
    assert rig.fake.statistics().open_clients == 0

    rig.command(Start())  # authorized: idempotent again
    await rig.run()
    assert rig.replies[-1].state == "authorized"
    assert len(await rig.kinds()) == len(kinds)


async def test_cancel_ends_the_attempt() -> None:
    """cancel while pending: LoginCancelled, client closed; a second cancel is wrong_state."""
    rig = Rig()

    def cancel_twice(_: Event) -> None:
        rig.command(Cancel())
        rig.command(Cancel())

    rig.on(QrIssued, cancel_twice)
    rig.command(Start())
    await rig.run()
    assert await rig.kinds() == ["LoginStarted", "QrIssued", "LoginCancelled"]
    assert rig.replies[1].state == "cancelled"
    assert rig.replies[2].error_code == "wrong_state"
    assert rig.fake.statistics().open_clients == 0


async def test_logout_and_validate_revoked() -> None:
    """logout logs the session out and deletes it; validate of a revoked one: LoggedOut(revoked)."""
    rig = Rig()
    rig.scan_on_qr()
    rig.command(Start())
    await rig.run()
    rig.command(Validate())
    await rig.run()
    assert rig.replies[-1].state == "authorized"
    rig.command(Logout())
    await rig.run()
    last = (await rig.events())[-1]
    assert isinstance(last, LoggedOut)
    assert last.reason == "command"
    assert await rig.vault.get(TENANT) is None
    rig.command(Logout())
    await rig.run()
    assert rig.replies[-1].error_code == "wrong_state"

    rig.command(Start(force=True))
    rig.scan_on_qr(user_id=11)
    await rig.run()
    rig.fake.revoke(11)
    rig.command(Validate())
    await rig.run()
    last = (await rig.events())[-1]
    assert isinstance(last, LoggedOut)
    assert last.reason == "revoked"
    assert await rig.vault.get(TENANT) is None
    assert rig.fake.statistics().open_clients == 0


# --- resume ----------------------------------------------------------------------------------


async def interrupted(rig: Rig, stop_on: type[Event], *, scan: bool = False) -> None:
    """Run the actor until ``stop_on`` is stored, then cancel it (a crash or a shutdown)."""
    reached = anyio.Event()
    rig.on(stop_on, lambda _: reached.set())
    if scan:
        rig.scan_on_qr()
    rig.command(Start())
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_actor, TENANT, rig.mailbox, rig.deps)
            await reached.wait()
            tg.cancel_scope.cancel()
    assert rig.fake.statistics().open_clients == 0


async def test_resume_pending_issues_a_new_qr() -> None:
    """A restarted actor whose log ends pending issues a new QR and finishes."""
    rig = Rig()
    await interrupted(rig, QrIssued)
    rig.scan_on_qr()
    await rig.run()
    assert await rig.kinds() == ["LoginStarted", "QrIssued", "QrIssued", "Scanned", "Authorized"]


async def test_resume_drops_a_session_the_log_never_announced() -> None:
    """Stopped between saving the session and storing Authorized: the log (pending) wins, the
    orphan session is dropped and the attempt goes on (here until it expires)."""
    rig = Rig()
    await interrupted(rig, QrIssued)
    await rig.vault.put(TENANT, "orphan-session", stage="authorized")
    await rig.run()
    assert (await rig.kinds())[-1] == "Expired"
    assert await rig.vault.get(TENANT) is None


async def test_resume_scanned_issues_a_new_qr() -> None:
    """Log ends scanned (the phone's acceptance went with the old client): new QR, rescan."""
    rig = Rig()
    await interrupted(rig, Scanned, scan=True)
    rig.log.hooks.clear()
    rig.scan_on_qr(user_id=8)
    await rig.run()
    kinds = await rig.kinds()
    assert kinds[:3] == ["LoginStarted", "QrIssued", "Scanned"]
    assert kinds[-3:] == ["QrIssued", "Scanned", "Authorized"]


async def test_resume_password_required_uses_the_pre_auth_session() -> None:
    """Cancelled while waiting for the password: the restarted actor finishes the 2FA."""
    rig = Rig()
    rig.fake.add_user(7, password=PASSWORD)
    await interrupted(rig, PasswordRequired, scan=True)
    entry = await rig.vault.get(TENANT)
    assert entry is not None
    assert entry.stage == "pre_auth"
    rig.log.hooks.clear()
    rig.command(Password(PASSWORD))
    await rig.run()
    kinds = await rig.kinds()
    assert kinds[-2:] == ["PasswordRequired", "Authorized"]
    assert kinds.count("QrIssued") == 1
    assert rig.replies[-1].state == "authorized"


async def test_resume_after_the_deadline_expires_at_once() -> None:
    """The deadline passed while the actor was down: Expired at once, nothing exported."""
    rig = Rig()
    await interrupted(rig, QrIssued)
    exports = rig.fake.statistics().exports
    rig.clock.now += timedelta(seconds=601)
    await rig.run()
    assert (await rig.kinds())[-1] == "Expired"
    assert rig.fake.statistics().exports == exports


async def test_a_resting_tenant_returns_at_once() -> None:
    """No live attempt and an empty mailbox: run_actor returns without touching Telegram."""
    rig = Rig()
    await rig.run()
    assert await rig.kinds() == []
    assert rig.fake.statistics().exports == 0


# --- failures --------------------------------------------------------------------------------


async def test_concurrency_conflict_stops_the_actor_without_forking() -> None:
    """Another writer appends meanwhile: the actor raises, the history stays one chain."""
    rig = Rig()

    def intrude(event: Event) -> None:
        if isinstance(event, QrIssued):
            rig.log.hooks.clear()
            other = seal(Scanned(tenant=TENANT, attempt=1, at=T0), rig.log.last_head.mac, CHAIN_KEY)
            rig.log.inject("tgqr.evt.acme", other.data, other.mac)

    rig.log.hooks.append(intrude)
    rig.scan_on_qr()
    rig.command(Start())
    with pytest.raises(ConcurrencyConflictError):
        await rig.run()
    assert rig.fake.statistics().open_clients == 0
    assert await rig.log.last_seq() == 3  # LoginStarted, QrIssued, the other writer's Scanned


async def test_junk_from_another_writer_quarantines_the_tenant() -> None:
    """A message that does not verify appears meanwhile: the actor stops, nothing forks."""
    rig = Rig()

    def intrude(event: Event) -> None:
        if isinstance(event, QrIssued):
            rig.log.hooks.clear()
            rig.log.inject("tgqr.evt.acme", b"{}")

    rig.log.hooks.append(intrude)
    rig.scan_on_qr()
    rig.command(Start())
    with pytest.raises(TenantQuarantinedError):
        await rig.run()
    assert rig.fake.statistics().open_clients == 0
    assert await rig.log.last_seq() == 3


async def test_telegram_unavailable_fails_the_attempt() -> None:
    """Telegram unreachable during a live attempt: LoginFailed(telegram_unavailable)."""
    rig = Rig()
    rig.fake.fail_next("auth.exportLoginToken")
    rig.command(Start())
    await rig.run()
    last = (await rig.events())[-1]
    assert isinstance(last, LoginFailed)
    assert last.reason == "telegram_unavailable"


async def test_unexpected_errors_propagate_and_close_the_client() -> None:
    """A crash inside Telegram propagates (for the supervisor) after closing the client."""
    rig = Rig()
    rig.fake.fail_next("auth.exportLoginToken", RuntimeError("boom"))
    rig.command(Start())
    with pytest.raises(RuntimeError, match="boom"):
        await rig.run()
    assert rig.fake.statistics().open_clients == 0
    first = (await rig.events())[0]
    assert isinstance(first, LoginStarted)
