"""Retries within a deadline, and writes that stay idempotent when an answer is lost.

A lost answer is made by :class:`LosingAnswers`: it lets a publish reach the server and then
raises the timeout a client sees when the ack never comes. On a single server the resend is
refused as "wrong last sequence" (nats-server checks the expected sequence before the Msg-Id
there); a cluster answers "duplicate". Both must end as "stored once, here is its sequence".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js import JetStreamContext, api

from actors.service import NatsServer
from events import ChainKey, Head, Scanned
from events.jetstream import JetStreamEventLog, ensure_stream
from events.jskv import RetryingKv
from events.jsretry import RetryPolicy, conditional_publish, retrying
from events.jsstorage import STREAM, ensure_bucket
from events.storage import StoragePolicy

pytestmark = pytest.mark.anyio

AT = datetime(2026, 1, 1, tzinfo=UTC)
FAST = RetryPolicy(try_s=0.2, deadline_s=1.0, backoff_s=0.01, max_backoff_s=0.02, jitter=0)


class FakeClock:
    """A monotonic clock that only the fake sleep moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class LosingAnswers:
    """A JetStream context whose next ``lose`` publishes are stored but never answered."""

    def __init__(self, js: JetStreamContext, lose: int = 1) -> None:
        self._js = js
        self.lose = lose
        self.publishes = 0

    async def publish(self, subject: str, payload: bytes = b"", **kwargs: Any) -> api.PubAck:
        self.publishes += 1
        ack = await self._js.publish(subject, payload, **kwargs)
        if self.lose:
            self.lose -= 1
            raise nats.errors.TimeoutError
        return ack

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    context = nc.jetstream(timeout=5)
    await ensure_stream(context)
    yield context
    await nc.close()


async def test_transient_failures_are_retried_until_the_deadline() -> None:
    """Timeouts are retried with growing backoff; at the deadline the last failure is raised."""
    clock = FakeClock()
    calls = 0

    async def unanswered() -> None:
        nonlocal calls
        calls += 1
        raise nats.errors.TimeoutError

    policy = RetryPolicy(try_s=1, deadline_s=2, backoff_s=0.1, max_backoff_s=0.4, jitter=0)
    with pytest.raises(nats.errors.TimeoutError):
        await retrying(unanswered, policy=policy, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.4, 0.4, 0.4]
    assert calls == 7


async def test_a_try_that_hangs_is_cut_short_and_retried() -> None:
    """A request with no answer costs one try, not the client's whole timeout."""
    calls = 0

    async def hangs_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await anyio.sleep_forever()
        return "answer"

    with anyio.fail_after(FAST.try_s + 0.5):
        assert await retrying(hangs_once, policy=FAST) == "answer"
    assert calls == 2


@pytest.mark.parametrize(
    "error",
    [nats.js.errors.NotFoundError(), nats.js.errors.APIError(code=503, err_code=10077)],
    ids=["not-found", "store-full"],
)
async def test_lasting_answers_are_raised_at_once(error: Exception) -> None:
    """An answer no election changes (not found, a full store's 503) is not retried."""
    calls = 0

    async def refuses() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await retrying(refuses, policy=FAST)
    assert calls == 1


async def test_a_resent_append_whose_answer_was_lost_is_stored_once(js: JetStreamContext) -> None:
    """The single server answers the resend "wrong last sequence"; the subject's last
    message carries the write's Msg-Id, so it is the write's own sequence."""
    losing = LosingAnswers(js)
    publish = _publisher(losing)
    seq = await publish(msg_id="first", expected_seq=0)
    assert (seq, losing.publishes) == (1, 2)
    assert (await js.stream_info(STREAM)).state.messages == 1
    with pytest.raises(nats.js.errors.APIError) as other:
        await publish(msg_id="second", expected_seq=0)  # a real conflict stays one
    assert other.value.err_code == 10071


async def test_an_event_log_append_survives_a_lost_answer(js: JetStreamContext) -> None:
    """Through the log: one event stored, the head is its sequence, no conflict."""
    losing = LosingAnswers(js)
    log = JetStreamEventLog(losing, ChainKey(b"k" * 32), retry=FAST)  # type: ignore[arg-type]
    head = await log.append("alice", [Scanned(tenant="alice", attempt=1, at=AT)], Head())
    assert head.seq == 1
    assert len((await log.load_tenant("alice")).records) == 1


async def test_kv_compare_and_set_survives_a_lost_answer(js: JetStreamContext) -> None:
    """create and update resent after a lost answer return their revision, not a conflict;
    a plain put resent is stored once."""
    kv = await ensure_bucket(
        js, "tgqr_retry", limits=StoragePolicy().leases, env_name="-", description="test"
    )
    losing = LosingAnswers(js, lose=3)
    store = RetryingKv(kv, "tgqr_retry", js=losing, policy=FAST)  # type: ignore[arg-type]
    created = await store.create("k", b"1")
    updated = await store.update("k", b"2", last=created)
    put = await store.put("k", b"3")
    assert (created, updated, put) == (1, 2, 3)
    assert (await kv.get("k")).value == b"3"
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await store.update("k", b"4", last=created)
    await store.purge("k")
    assert await store.create("k", b"again") == 5  # after the purge marker


def _publisher(js: LosingAnswers) -> Callable[..., Awaitable[int]]:
    async def publish(*, msg_id: str, expected_seq: int) -> int:
        return await conditional_publish(
            js,  # type: ignore[arg-type]
            "tgqr.evt.alice",
            b"x",
            stream=STREAM,
            msg_id=msg_id,
            expected_seq=expected_seq,
            policy=FAST,
        )

    return publish
