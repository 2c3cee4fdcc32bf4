"""The owners bucket (``tgqr_owners``): members' heartbeats and partitions' owners, on JetStream.

- ``m.<instance>``: a member's heartbeat, published with a per-message TTL (``Nats-TTL``), so
  the server removes it, without a marker, when its instance stops renewing; a member leaving
  on purpose purges its key. The members alive are the keys the stream holds now.
- ``p.<n>``: partition ``n``'s owner (an instance id, or empty once released), never
  expiring. Claims and releases are compare-and-set publishes
  (``Nats-Expected-Last-Subject-Sequence``); the stream sequence of the winning claim is the
  partition's fence, and only one claim can win per revision.

Partition keys are followed by an ordered consumer (last value per key, then every change);
the member list is read from the stream's subjects each tick (expiry produces no message to
follow).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from events import StorageLimits
from events.jsstorage import bucket_stream, ensure_bucket

__all__ = ["OWNERS_BUCKET", "UNAVAILABLE", "CasFailedError", "OwnersBucket"]

log = logging.getLogger("tgqr.ownership")

OWNERS_BUCKET: Final = "tgqr_owners"
_PREFIX: Final = f"$KV.{OWNERS_BUCKET}."
_MEMBERS: Final = f"{_PREFIX}m.*"
_PARTITIONS: Final = f"{_PREFIX}p.*"
_WRONG_LAST: Final = frozenset({10071, 10164})
_LIMITS: Final = StorageLimits(
    max_bytes=8 * 1024 * 1024, max_msgs=100_000, max_msg_size=1024, max_consumers=256
)
_DELETED: Final = frozenset({"DEL", "PURGE"})


UNAVAILABLE: Final = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionClosedError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.APIError,
)
"""What a read or write of the bucket may meet while its stream elects a leader or the
connection is being re-established."""


class CasFailedError(Exception):
    """A compare-and-set write lost: the key moved on since the revision it expected."""


class OwnersBucket:
    """Reads and writes of the owners bucket. ``await OwnersBucket.open(js, ...)``."""

    def __init__(
        self, js: JetStreamContext, *, timeout_s: float, setup: JetStreamContext | None = None
    ) -> None:
        self._js = js
        self._setup = setup or js  # for creating the follower's consumer (slower)
        self._stream = bucket_stream(OWNERS_BUCKET)
        self._timeout_s = timeout_s

    @classmethod
    async def open(cls, nc: Client, *, replicas: int, timeout_s: float = 1.0) -> OwnersBucket:
        """Create or bind the bucket (JetStream's own timeouts); then every read and write of
        it gives up after ``timeout_s``: a tick never hangs on a stream being elected."""
        await ensure_bucket(
            nc.jetstream(timeout=10),
            OWNERS_BUCKET,
            limits=_LIMITS,
            env_name="(fixed)",
            description="tgqr: instances alive and the partition each owns",
            replicas=replicas,
        )
        return cls(
            nc.jetstream(timeout=timeout_s), timeout_s=timeout_s, setup=nc.jetstream(timeout=10)
        )

    async def heartbeat(self, me: str, ttl_s: int) -> None:
        """Publish ``me``'s heartbeat, alive for ``ttl_s`` seconds on the server."""
        await self._js.publish(
            f"{_PREFIX}m.{me}",
            b"alive",
            stream=self._stream,
            timeout=self._timeout_s,
            msg_ttl=ttl_s,
        )

    async def leave(self, me: str) -> None:
        """Remove ``me``'s heartbeat now (a member leaving on purpose)."""
        await self._js.purge_stream(self._stream, subject=f"{_PREFIX}m.{me}")

    async def members(self) -> set[str]:
        """The instances whose heartbeat the server holds now."""
        info = await self._js.stream_info(self._stream, subjects_filter=_MEMBERS)
        return {subject[len(_PREFIX) + 2 :] for subject in info.state.subjects or {}}

    async def has_partitions(self) -> bool:
        """Whether any partition key exists yet."""
        info = await self._js.stream_info(self._stream, subjects_filter=_PARTITIONS)
        return bool(info.state.subjects)

    async def claim(self, partition: int, me: str, revision: int) -> int:
        """Make ``me`` the owner of ``partition`` if its key is still at ``revision``; the
        new revision (the fence).

        Raises:
            CasFailedError: the key moved on.
        """
        return await self._cas(partition, me.encode(), revision)

    async def release(self, partition: int, revision: int) -> None:
        """Leave ``partition`` without an owner if its key is still at ``revision``.

        Raises:
            CasFailedError: the key moved on.
        """
        await self._cas(partition, b"", revision)

    async def _cas(self, partition: int, value: bytes, revision: int) -> int:
        try:
            ack = await self._js.publish(
                f"{_PREFIX}p.{partition}",
                value,
                stream=self._stream,
                timeout=self._timeout_s,
                headers={api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(revision)},
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code in _WRONG_LAST:
                raise CasFailedError(str(partition)) from exc
            raise
        return int(ack.seq)

    async def follow_partitions(
        self, on_change: Callable[[int, str, int, int], None]
    ) -> JetStreamContext.PushSubscription:
        """Call ``on_change(partition, owner or "", revision, pending)`` for each partition
        key's last value, then for every change (unsubscribe the result to stop); ``pending``
        is 0 once the last values are all delivered."""

        async def deliver(msg: Msg) -> None:
            try:
                partition = int(msg.subject.rsplit(".", 1)[1])
            except ValueError:
                return
            deleted = (msg.headers or {}).get("KV-Operation") in _DELETED
            owner = "" if deleted else msg.data.decode(errors="replace")
            meta = msg.metadata
            on_change(partition, owner, int(meta.sequence.stream), int(meta.num_pending or 0))

        return await self._setup.subscribe(
            _PARTITIONS,
            stream=self._stream,
            cb=deliver,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
            inactive_threshold=30.0,
        )
