"""JetStream calls that ride out a stream leader election: short tries, backoff, one deadline.

A request to a stream whose leader just died gets no answer (or a 503) until the remaining
replicas elect a new one, about 5 s on a 3-node cluster. One long timeout per call stalls every
caller for that timeout, however short the election; so each try here is bounded by
:attr:`RetryPolicy.try_s`, the transient failures (no answer, no responders, 503, a reconnecting
client) are retried after a short backoff, and the call gives up only at
:attr:`RetryPolicy.deadline_s`. A node loss then stalls a call for the election plus at most one
try and one backoff.

Writes are retried with the same ``Nats-Msg-Id``, which makes them idempotent within the
stream's duplicate window, with one catch checked in nats-server 2.15's sources: a clustered
stream checks the Msg-Id before ``Nats-Expected-Last-Subject-Sequence``
(``checkMsgHeadersPreClusteredProposal``), so a resent write that was stored answers
"duplicate"; a single server checks the expected sequence first (``processJetStreamMsg``), so the
same resend answers "wrong last sequence". :func:`conditional_publish` therefore reads the
subject's last message after such an answer and calls the write its own when that message
carries its Msg-Id.

With :mod:`events.jsstorage`, the only modules of ``events`` importing nats besides the adapter.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import anyio
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api

__all__ = [
    "DEFAULT_POLICY",
    "TRANSIENT",
    "WRONG_LAST_SEQUENCE",
    "RetryPolicy",
    "conditional_publish",
    "is_wrong_last_sequence",
    "retrying",
]

T = TypeVar("T")

TRANSIENT: Final = (
    TimeoutError,  # a try that outlived RetryPolicy.try_s (anyio's fail_after)
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.errors.ConnectionReconnectingError,
)
"""What a try may fail with while a leader is elected or the client reconnects."""
WRONG_LAST_SEQUENCE: Final = frozenset({10071, 10164})
_LASTING: Final = frozenset({10077, 10047, 10023})
"""503s that no election ends: the store is full (10077), no storage or resources left."""
_MSG_ID: Final = "Nats-Msg-Id"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How long one JetStream call may take, in tries.

    ``try_s``: the most one try waits for its answer. A request sent while a stream has no
    leader is never answered, so this bounds how long a caller waits after the election ended;
    an answer slower than it (a loaded server) costs a resend, which is safe: reads repeat and
    writes are deduplicated. ``deadline_s``: the whole call, after which the last failure is
    raised. Backoff between tries grows from ``backoff_s`` to ``max_backoff_s``, with up to
    ``jitter`` of it added at random so that many callers do not retry in step.
    """

    try_s: float = 0.75
    deadline_s: float = 15.0
    backoff_s: float = 0.05
    max_backoff_s: float = 0.25
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.try_s <= self.deadline_s:
            raise ValueError("RetryPolicy needs 0 < try_s <= deadline_s")


DEFAULT_POLICY: Final = RetryPolicy()


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """``await call()`` until it returns, retrying :data:`TRANSIENT` failures within the
    policy's deadline. Each try is cancelled after ``policy.try_s`` (nats-py's requests clean
    up when cancelled); the last try is cut to what is left of the deadline.

    Raises:
        TRANSIENT: the last failure, once the deadline has passed (``TimeoutError`` for a try
            that was not answered in time); at once for a 503 that says the store is full.
        Exception: whatever else ``call`` raises, at once.
    """
    deadline = clock() + policy.deadline_s
    delay = policy.backoff_s
    while True:
        left = deadline - clock()
        try:
            with anyio.fail_after(max(min(policy.try_s, left), 0.001)):
                return await call()
        except TRANSIENT as exc:
            pause = delay * (1 + policy.jitter * rand())
            if _lasting(exc) or clock() + pause >= deadline:
                raise
        await sleep(pause)
        delay = min(delay * 2, policy.max_backoff_s)


def _lasting(exc: BaseException) -> bool:
    return isinstance(exc, nats.js.errors.APIError) and exc.err_code in _LASTING


def is_wrong_last_sequence(exc: BaseException) -> bool:
    """Whether ``exc`` is JetStream's refusal of ``Nats-Expected-Last-Subject-Sequence``."""
    return isinstance(exc, nats.js.errors.APIError) and exc.err_code in WRONG_LAST_SEQUENCE


async def conditional_publish(
    js: JetStreamContext,
    subject: str,
    data: bytes,
    *,
    stream: str,
    msg_id: str,
    expected_seq: int,
    headers: dict[str, str] | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> int:
    """Store ``data`` on ``subject`` if the subject's last stream sequence is ``expected_seq``
    (0: the subject is empty) and return its sequence; retried within the policy with the same
    ``msg_id``, so a write is stored once however often it is resent.

    A "wrong last sequence" answer to a resend (an earlier try went unanswered) is checked:
    when the subject's last message carries ``msg_id``, that is this write, stored by the
    earlier try.

    Raises:
        nats.js.errors.APIError: the store refused (``is_wrong_last_sequence`` tells a
            conflict: the subject holds another write).
        TRANSIENT: no answer within the deadline.
    """
    tries = 0

    async def once() -> api.PubAck:
        nonlocal tries
        tries += 1
        # js.publish adds to the dict it is given: a fresh one for every try.
        fresh = {**(headers or {}), _MSG_ID: msg_id}
        fresh["Nats-Expected-Last-Subject-Sequence"] = str(expected_seq)
        return await js.publish(subject, data, stream=stream, headers=fresh)

    try:
        ack = await retrying(once, policy=policy, sleep=sleep)
    except nats.js.errors.APIError as exc:
        # Only a transient failure leads to another try: tries > 1 means one went unanswered.
        if tries > 1 and is_wrong_last_sequence(exc):
            mine = await _stored_seq(js, stream, subject, msg_id=msg_id, policy=policy, sleep=sleep)
            if mine is not None:
                return mine
        raise
    return int(ack.seq)


async def _stored_seq(
    js: JetStreamContext,
    stream: str,
    subject: str,
    *,
    msg_id: str,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
) -> int | None:
    """The sequence of the subject's last message if it carries ``msg_id`` (a leader read:
    read-after-write consistent)."""
    try:
        last = await retrying(lambda: js.get_last_msg(stream, subject), policy=policy, sleep=sleep)
    except nats.js.errors.NotFoundError:
        return None
    if (last.headers or {}).get(_MSG_ID) == msg_id:
        return int(last.seq or 0)
    return None
