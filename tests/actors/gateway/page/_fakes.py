"""Fakes for the page's unit tests: a tenant log of sealed events (read through the real
``check_tenant``), a bus that records commands and follows the fake log's stored messages as
they are added, a settable clock, and the deps that wire them (no NATS)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from actors.gateway import RateLimiter
from actors.gateway.page import PAGE_LIMITS, LinkKey, LinkSigner, PageDeps
from events import (
    Authorized,
    ChainKey,
    Event,
    EventLogUnavailableError,
    Expired,
    Head,
    LoginStarted,
    QrIssued,
    Record,
    StoredMessage,
    TenantLog,
    check_tenant,
    decode_stored,
    event_subject,
    seal,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHAIN_KEY = ChainKey(b"c" * 32)
LINK_KEY = LinkKey(b"k" * 32)
BASE = "http://testserver"
SAME_ORIGIN = {"origin": BASE, "sec-fetch-site": "same-origin"}
"""What a browser sends with a form posted from our own page."""


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeLog:
    """Stored messages per tenant, as the stream holds them (sealed and chained by ``add``,
    or any bytes by ``store``); read through the real ``check_tenant``."""

    stored: list[StoredMessage] = field(default_factory=list)
    unavailable: bool = False
    _added: anyio.Event = field(default_factory=anyio.Event)

    @property
    def records(self) -> dict[str, list[Record]]:
        """Every stored message that decodes, per tenant."""
        out: dict[str, list[Record]] = {}
        for message in self.stored:
            item = decode_stored(message)
            if isinstance(item, Record):
                out.setdefault(item.tenant, []).append(item)
        return out

    def add(self, event: Event, *, mac: str | None = None) -> Record:
        """Append ``event`` linked to the tenant's last verified event, as the service does
        (``mac``: store it with this wrong MAC instead)."""
        subject = event_subject(event.tenant)
        items = [decode_stored(m) for m in self.stored if m.subject == subject]
        head = check_tenant(event.tenant, items, CHAIN_KEY).head
        sealed = seal(event, head.mac, CHAIN_KEY)
        return self.store(event.tenant, sealed.data, mac or sealed.mac)

    def store(self, tenant: str, data: bytes, mac: str) -> Record:
        """Store ``data`` on the tenant's subject as is (a replay, a forgery)."""
        message = StoredMessage(len(self.stored) + 1, event_subject(tenant), data, mac)
        self.stored.append(message)
        self._added.set()
        self._added = anyio.Event()
        item = decode_stored(message)
        assert isinstance(item, Record)
        return item

    async def load_tenant(self, tenant: str, *, after: Head | None = None) -> TenantLog:
        if self.unavailable:
            raise EventLogUnavailableError("down")
        subject = event_subject(tenant)
        items = [decode_stored(m) for m in self.stored if m.subject == subject]
        return check_tenant(tenant, items, CHAIN_KEY, after=after)

    async def follow(self, tenant: str, after: int) -> AsyncIterator[StoredMessage]:
        """The tenant's stored messages after ``after``, then each one as it is stored."""
        subject = event_subject(tenant)
        seen = after
        while True:
            added = self._added
            for message in self.stored[seen:]:
                seen = message.seq
                if message.subject == subject:
                    yield message
            await added.wait()


@dataclass
class FakeBus:
    """Records every command; ``start`` on an idle tenant appends ``LoginStarted`` (with the
    body's ``expected_user_id``); ``follow`` delivers the fake log's stored messages."""

    log: FakeLog
    clock: Clock
    commands: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: bool = False

    async def command(self, tenant: str, verb: str, body: Mapping[str, object]) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("the bus broke")
        self.commands.append((tenant, verb, dict(body)))
        if verb in self.replies:
            return self.replies[verb]
        if verb == "start":
            attempt = sum(
                isinstance(r.event, LoginStarted) for r in self.log.records.get(tenant, [])
            )
            expected = body.get("expected_user_id")
            at = self.clock()
            self.log.add(
                LoginStarted(
                    tenant=tenant,
                    attempt=attempt + 1,
                    at=at,
                    deadline=at + timedelta(seconds=600),
                    expected_user_id=expected if isinstance(expected, int) else None,
                )
            )
        return {"ok": True, "tenant": tenant, "attempt": 1, "state": "pending"}

    @asynccontextmanager
    async def follow(
        self, tenant: str, after: int
    ) -> AsyncIterator[MemoryObjectReceiveStream[StoredMessage]]:
        send, receive = anyio.create_memory_object_stream[StoredMessage](16)

        async def pump() -> None:
            async with send:
                async for message in self.log.follow(tenant, after):
                    await send.send(message)

        async with anyio.create_task_group() as tg, receive:
            tg.start_soon(pump)
            yield receive
            tg.cancel_scope.cancel()


def started(
    tenant: str, attempt: int = 1, at: datetime = T0, expected_user_id: int | None = None
) -> LoginStarted:
    return LoginStarted(
        tenant=tenant,
        attempt=attempt,
        at=at,
        deadline=at + timedelta(seconds=600),
        expected_user_id=expected_user_id,
    )


def qr(tenant: str, n: int = 1, at: datetime = T0, attempt: int = 1) -> QrIssued:
    return QrIssued(
        tenant=tenant,
        attempt=attempt,
        at=at,
        url=f"tg://login?token=dG9rZW4{n}",
        expires_at=at + timedelta(seconds=30),
        dc_id=1,
    )


def authorized(tenant: str, user_id: int = 4242, at: datetime = T0) -> Authorized:
    return Authorized(
        tenant=tenant, attempt=1, at=at, user_id=user_id, dc_id=1, session_fingerprint="ab"
    )


def expired(tenant: str, at: datetime = T0, attempt: int = 1) -> Expired:
    return Expired(tenant=tenant, attempt=attempt, at=at)


@dataclass
class World:
    clock: Clock
    log: FakeLog
    bus: FakeBus
    signer: LinkSigner
    deps: PageDeps


def world(limits: Mapping[str, int] = PAGE_LIMITS, keepalive_s: float = 15.0) -> World:
    clock = Clock()
    log = FakeLog()
    bus = FakeBus(log, clock)
    signer = LinkSigner(LINK_KEY, BASE, clock)
    deps = PageDeps(
        log=log,
        chain_key=CHAIN_KEY,
        bus=bus,
        signer=signer,
        limiter=RateLimiter(limits),
        public_origins=frozenset({BASE}),
        clock=clock,
        monotonic=clock.monotonic,
        keepalive_s=keepalive_s,
    )
    return World(clock, log, bus, signer, deps)


def path(w: World, tenant: str = "alice", ttl: int = 600) -> str:
    """The path of a fresh link to ``tenant``'s page."""
    return f"/l/{w.signer.issue(tenant, ttl).token}"


def state_of(html: str) -> str:
    found = re.search(r'<body data-state="([a-z_]+)"', html)
    assert found, html[:400]
    return found.group(1)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)
