"""A whole-log read on JetStream ends early only when the stream confirms the tail is gone:
a reader that stalls (a slow server, a lost consumer) is retried, then fails loudly, and is
never taken for a deleted tail (a silently short read, or a false break in the audit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actors.service import NatsServer
from events import (
    ChainKey,
    Event,
    EventLogUnavailableError,
    Head,
    LoginStarted,
    QrIssued,
    verify_log,
)
from events._jsinbox import Inbox, position
from events.jetstream import STREAM, JetStreamEventLog, ensure_stream

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"tail-test-key-0123456789abcdef01")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def events(tenant: str, n: int) -> list[Event]:
    first: Event = LoginStarted(tenant=tenant, attempt=1, at=T0, deadline=T0)
    qrs: list[Event] = [
        QrIssued(tenant=tenant, attempt=1, at=T0, url=f"tg://{i}", expires_at=T0, dc_id=1)
        for i in range(n - 1)
    ]
    return [first, *qrs]


class _Dropping(Inbox):
    """Files only the messages before stream sequence ``cut``: a consumer that stalls there."""

    def __init__(self, inner: Inbox, cut: int) -> None:
        super().__init__()
        self._inner = inner
        self._cut = cut

    async def deliver(self, msg: Msg) -> None:
        if position(msg)[0] < self._cut:
            await self._inner.deliver(msg)


class StallingLog(JetStreamEventLog):
    """A log whose first ``stalls`` consumers deliver nothing from sequence ``cut`` on."""

    def __init__(self, js: JetStreamContext, *, cut: int, stalls: int) -> None:
        super().__init__(js, KEY, timeout=0.3)
        self.cut = cut
        self.stalls = stalls
        self.follows = 0

    async def _follow(
        self, subject: str, start: int, inbox: Inbox
    ) -> JetStreamContext.PushSubscription:
        self.follows += 1
        if self.follows <= self.stalls:
            return await super()._follow(subject, start, _Dropping(inbox, self.cut))
        return await super()._follow(subject, start, inbox)


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    yield client
    await client.drain()


async def _filled(nc: Client, *, deny_delete: bool = True) -> JetStreamContext:
    js = nc.jetstream()
    await ensure_stream(js, deny_delete=deny_delete)
    log = JetStreamEventLog(js, KEY)
    await log.append("alice", events("alice", 10), Head())
    return js


async def test_a_reader_that_stalls_for_good_fails_instead_of_ending_short(nc: Client) -> None:
    """Messages 6..10 exist but never arrive: the read raises, it does not end at 5."""
    log = StallingLog(await _filled(nc), cut=6, stalls=100)
    seen: list[int] = []

    async def read() -> None:
        async for chunk in log.read_chunks(1):
            seen.extend(m.seq for m in chunk)

    with pytest.raises(EventLogUnavailableError, match="stalled at sequence 6"):
        await read()
    assert seen == [1, 2, 3, 4, 5]
    with pytest.raises(EventLogUnavailableError):
        await verify_log(log, KEY)  # an audit fails loudly rather than report a deletion


async def test_a_reader_that_stalls_once_is_retried_to_the_end(nc: Client) -> None:
    """A consumer that stops delivering is re-created from where the read stands."""
    log = StallingLog(await _filled(nc), cut=4, stalls=1)
    seqs = [m.seq async for chunk in log.read_chunks(1) for m in chunk]
    assert seqs == list(range(1, 11))
    assert log.follows == 2
    assert (await verify_log(log, KEY)).ok


async def test_a_deleted_tail_is_confirmed_and_ends_the_read(nc: Client) -> None:
    """When the last messages were deleted, the read ends after what is left and the audit
    names the missing sequences."""
    js = await _filled(nc, deny_delete=False)
    for seq in (9, 10):
        await js.delete_msg(STREAM, seq)
    log = JetStreamEventLog(js, KEY, timeout=0.3)
    seqs = [m.seq async for chunk in log.read_chunks(1) for m in chunk]
    assert seqs == list(range(1, 9))
    report = await verify_log(log, KEY)
    assert report.first_break is not None
    assert report.first_break.seq == 9
    assert "missing sequences 9..10" in report.first_break.reason
