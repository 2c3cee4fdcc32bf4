"""Fakes for the page's unit tests: a tenant log of sealed events, a bus that records
commands, a settable clock, and the deps that wire them (no NATS, no event loop needed)."""

from __future__ import annotations

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
    LoginStarted,
    QrIssued,
    Record,
    StoredMessage,
    seal,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHAIN_KEY = ChainKey(b"c" * 32)
LINK_KEY = LinkKey(b"k" * 32)
BASE = "http://testserver"


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
    """Sealed, chained records per tenant (what ``read_tenant`` of the real log returns)."""

    records: dict[str, list[Record]] = field(default_factory=dict)
    seq: int = 0
    unavailable: bool = False

    def add(self, event: Event, *, mac: str | None = None) -> Record:
        chain = self.records.setdefault(event.tenant, [])
        sealed = seal(event, chain[-1].mac if chain else "", CHAIN_KEY)
        self.seq += 1
        record = Record(self.seq, event.tenant, sealed.event, mac or sealed.mac, sealed.data)
        chain.append(record)
        return record

    async def read_tenant(self, tenant: str, after: int = 0) -> list[Record]:
        if self.unavailable:
            raise EventLogUnavailableError("down")
        return [r for r in self.records.get(tenant, []) if r.seq > after]


@dataclass
class FakeBus:
    """Records every command; ``start`` on an idle tenant appends ``LoginStarted``."""

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
            self.log.add(started(tenant, attempt + 1, self.clock()))
        return {"ok": True, "tenant": tenant, "attempt": 1, "state": "pending"}

    @asynccontextmanager
    async def follow(
        self, tenant: str, after: int
    ) -> AsyncIterator[MemoryObjectReceiveStream[StoredMessage]]:
        send, receive = anyio.create_memory_object_stream[StoredMessage](1)
        async with send, receive:
            yield receive


def started(tenant: str, attempt: int = 1, at: datetime = T0) -> LoginStarted:
    return LoginStarted(tenant=tenant, attempt=attempt, at=at, deadline=at + timedelta(seconds=600))


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
