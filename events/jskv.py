"""A JetStream KV bucket whose calls ride out a stream leader election (:mod:`events.jsretry`).

The vault, the lease store and the command dedupe keep their records in KV buckets; this is the
one place their calls are retried. Every write carries a fresh ``Nats-Msg-Id``, kept across its
resends, so a write that was stored by a try that went unanswered is not stored twice, and a
compare-and-set (:meth:`RetryingKv.create`, :meth:`RetryingKv.update`) whose resend is refused as
"wrong last sequence" is recognised as stored (:func:`events.jsretry.conditional_publish`)
instead of reported as a conflict.
"""

from __future__ import annotations

import dataclasses
import uuid

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from .jsretry import (
    DEFAULT_POLICY,
    RetryPolicy,
    conditional_publish,
    is_wrong_last_sequence,
    retrying,
)

__all__ = ["RetryingKv"]

_OPERATION = "KV-Operation"
_REMOVED = frozenset({"DEL", "PURGE"})


class RetryingKv:
    """The KV bucket ``bucket`` (bound as ``kv``; ``js``: the context to publish through,
    by default the one ``kv`` was bound with), each call retried within ``policy``.

    Calls raise what nats-py's :class:`KeyValue` raises: ``KeyNotFoundError``,
    ``KeyDeletedError``, ``KeyWrongLastSequenceError`` and API errors at once, and the last
    transient failure (:data:`events.jsretry.TRANSIENT`) once the deadline has passed.
    """

    def __init__(
        self,
        kv: KeyValue,
        bucket: str,
        *,
        js: JetStreamContext | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        # nats-py keeps a bucket's context private; it is the one to publish through.
        self._js: JetStreamContext = js or kv._js
        self._kv = kv
        self._stream = f"KV_{bucket}"
        self._prefix = f"$KV.{bucket}."
        self._policy = policy

    async def get(self, key: str) -> KeyValue.Entry:
        """The key's entry (a leader read when the bucket has no direct gets)."""
        return await retrying(lambda: self._kv.get(key), policy=self._policy)

    async def keys(self) -> list[str]:
        """Every key. A listing of a large bucket takes longer than a try: only failures
        are retried here, not slowness."""
        whole = dataclasses.replace(self._policy, try_s=self._policy.deadline_s)
        return await retrying(self._kv.keys, policy=whole)

    async def put(self, key: str, value: bytes) -> int:
        """Store ``value`` under ``key`` whatever it held; its revision."""
        return await self._publish(key, value, {})

    async def purge(self, key: str) -> None:
        """Remove ``key`` and its history (a purge marker stays)."""
        await self._publish(key, b"", {_OPERATION: "PURGE", "Nats-Rollup": "sub"})

    async def create(self, key: str, value: bytes) -> int:
        """Store ``value`` if ``key`` holds nothing (never written, deleted or purged).

        Raises:
            KeyWrongLastSequenceError: the key holds a value.
        """
        msg_id = _new_id()
        try:
            return await self._conditional(key, value, 0, msg_id)
        except nats.js.errors.KeyWrongLastSequenceError:
            # The key's last message may be a delete or purge marker: create after it.
            subject = self._prefix + key
            try:
                last = await retrying(
                    lambda: self._js.get_last_msg(self._stream, subject), policy=self._policy
                )
            except nats.js.errors.NotFoundError:
                return await self._conditional(key, value, 0, msg_id)  # expired meanwhile
            if (last.headers or {}).get(_OPERATION) in _REMOVED:
                return await self._conditional(key, value, int(last.seq or 0), msg_id)
            raise

    async def update(self, key: str, value: bytes, *, last: int) -> int:
        """Store ``value`` if ``key`` is at revision ``last``; its new revision.

        Raises:
            KeyWrongLastSequenceError: the key moved on (or does not exist).
        """
        return await self._conditional(key, value, last, _new_id())

    async def _conditional(self, key: str, value: bytes, last: int, msg_id: str) -> int:
        try:
            return await conditional_publish(
                self._js,
                self._prefix + key,
                value,
                stream=self._stream,
                msg_id=msg_id,
                expected_seq=last,
                policy=self._policy,
            )
        except nats.js.errors.APIError as exc:
            if is_wrong_last_sequence(exc):
                raise nats.js.errors.KeyWrongLastSequenceError(exc.description) from exc
            raise

    async def _publish(self, key: str, value: bytes, headers: dict[str, str]) -> int:
        msg_id = _new_id()

        async def once() -> int:
            # js.publish adds to the dict it is given: a fresh one for every try.
            fresh = {**headers, "Nats-Msg-Id": msg_id}
            ack = await self._js.publish(self._prefix + key, value, headers=fresh)
            return int(ack.seq)

        return await retrying(once, policy=self._policy)


def _new_id() -> str:
    """A write's Nats-Msg-Id (unique, not secret)."""
    return f"kv-{uuid.uuid4().hex}"
