"""tgqr's JetStream stores and their limits: the event stream and the KV buckets beside it.

Every store gets the limits of :class:`events.storage.StoragePolicy` and JetStream's discard
policy ``new``: when one is full it refuses new writes and never deletes old data to make room.
Creating or updating a store is idempotent, and an existing one (also one created before it had
limits) is updated in place at start without losing anything: with discard ``new`` a limit below
what a store holds refuses writes, it deletes nothing. Consumers on the stores expire when idle
(``consumer_limits``), durable or not, and there are at most ``max_consumers`` at once.
"""

from __future__ import annotations

import dataclasses
from typing import Final

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from ._tenant import EVENT_SUBJECT_WILDCARD
from .errors import EventLogUnavailableError, StorageLimitError
from .jsretry import DEFAULT_POLICY, RetryPolicy, retrying
from .storage import StorageLimits, StoragePolicy, StorageUse

__all__ = [
    "BUCKET_CONSUMER_IDLE_S",
    "LOG_CONSUMER_IDLE_S",
    "SERVICE_BUCKETS",
    "STREAM",
    "bucket_stream",
    "ensure_bucket",
    "ensure_stream",
    "stream_config",
    "stream_use",
]

STREAM: Final = "TGQR_EVENTS"
SERVICE_BUCKETS: Final = ("tgqr_sessions", "tgqr_leases", "tgqr_dedupe")
"""The buckets the service keeps beside the log (their fill is reported with the log's)."""
LOG_CONSUMER_IDLE_S: Final = 30.0
"""A consumer of the log that nobody listens to or pulls from for this long is deleted by the
server, and no consumer may ask to stay longer: nothing accumulates."""
BUCKET_CONSUMER_IDLE_S: Final = 300.0
"""The same for the buckets: nats-py's key listings and watches ask for 300 s."""
_TOO_BIG: Final = 10047  # insufficient storage resources available
_UNAVAILABLE: Final = (nats.errors.Error, OSError)


def bucket_stream(bucket: str) -> str:
    """The stream that holds a KV bucket."""
    return f"KV_{bucket}"


def _limit_fields(limits: StorageLimits, idle_s: float) -> dict[str, object]:
    return {
        "max_bytes": limits.max_bytes,
        "max_msgs": limits.max_msgs,
        "max_msg_size": limits.max_msg_size,
        "max_consumers": limits.max_consumers,
        "discard": api.DiscardPolicy.NEW,
        "consumer_limits": api.StreamConsumerLimits(inactive_threshold=idle_s),
    }


def stream_config(
    *,
    name: str = STREAM,
    replicas: int = 1,
    deny_delete: bool = True,
    deny_purge: bool = True,
    subjects: list[str] | None = None,
    limits: StorageLimits | None = None,
) -> api.StreamConfig:
    """The event stream's configuration (``limits``: the policy's default for the log)."""
    limits = limits or StoragePolicy().log
    return api.StreamConfig(
        name=name,
        subjects=subjects or [EVENT_SUBJECT_WILDCARD],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        num_replicas=replicas,
        duplicate_window=120.0,
        deny_delete=deny_delete,
        deny_purge=deny_purge,
        allow_direct=True,
        **_limit_fields(limits, LOG_CONSUMER_IDLE_S),  # type: ignore[arg-type]
    )


async def ensure_stream(
    js: JetStreamContext,
    *,
    name: str = STREAM,
    replicas: int = 1,
    deny_delete: bool = True,
    deny_purge: bool = True,
    subjects: list[str] | None = None,
    limits: StorageLimits | None = None,
) -> api.StreamInfo:
    """Create the event stream, or update it to this config; idempotent, deletes nothing.

    Raises:
        StorageLimitError: the server cannot reserve the stream's ``max_bytes``.
        nats.errors.Error: JetStream refused otherwise or did not answer.
    """
    config = stream_config(
        name=name,
        replicas=replicas,
        deny_delete=deny_delete,
        deny_purge=deny_purge,
        subjects=subjects,
        limits=limits,
    )
    try:
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            return await js.add_stream(config)
        return await js.update_stream(config)
    except nats.js.errors.APIError as exc:
        _raise_limit_error(exc, name, config.max_bytes, "TGQR_LOG_MAX_BYTES")
        raise


async def ensure_bucket(
    js: JetStreamContext,
    bucket: str,
    *,
    limits: StorageLimits,
    env_name: str,
    description: str,
    history: int = 1,
    ttl: float | None = None,
    replicas: int = 1,
) -> KeyValue:
    """Bind to the KV ``bucket`` with these limits: create it (direct gets off: leader reads are
    read-after-write consistent), or update an existing one's limits in place (nothing else of
    it changes). ``env_name``: the variable that sets its ``max_bytes``, for the error.

    Raises:
        StorageLimitError: the server cannot reserve the bucket's ``max_bytes``.
        nats.errors.Error: JetStream refused otherwise or did not answer.
    """
    stream = bucket_stream(bucket)
    fields = _limit_fields(limits, BUCKET_CONSUMER_IDLE_S)
    try:
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            window = min(120.0, ttl) if ttl else 120.0
            await js.add_stream(
                api.StreamConfig(
                    name=stream,
                    description=description,
                    subjects=[f"$KV.{bucket}.>"],
                    allow_direct=False,
                    allow_rollup_hdrs=True,
                    allow_msg_ttl=True,
                    deny_delete=True,
                    duplicate_window=window,
                    max_age=ttl,
                    max_msgs_per_subject=history,
                    num_replicas=replicas,
                    storage=api.StorageType.FILE,
                    **fields,  # type: ignore[arg-type]
                )
            )
        else:
            current = info.config
            if any(getattr(current, key) != value for key, value in fields.items()):
                await js.update_stream(dataclasses.replace(current, **fields))  # type: ignore[arg-type]
    except nats.js.errors.APIError as exc:
        _raise_limit_error(exc, stream, limits.max_bytes, env_name)
        raise
    return await js.key_value(bucket)


async def stream_use(
    js: JetStreamContext, name: str, *, retry: RetryPolicy = DEFAULT_POLICY
) -> StorageUse | None:
    """How full the stream ``name`` is (None: there is no such stream), asked with ``retry``.

    Raises:
        EventLogUnavailableError: JetStream did not answer.
    """
    try:
        info = await retrying(lambda: js.stream_info(name), policy=retry)
    except nats.js.errors.NotFoundError:
        return None
    except _UNAVAILABLE as exc:
        raise EventLogUnavailableError(f"stream info of {name} unavailable: {exc!r}") from exc
    return StorageUse(
        name,
        int(info.state.bytes),
        int(info.state.messages),
        max(0, info.config.max_bytes or 0),
        max(0, info.config.max_msgs or 0),
    )


def _raise_limit_error(
    exc: nats.js.errors.APIError, name: str, max_bytes: int | None, env_name: str
) -> None:
    """Raise :class:`StorageLimitError` if the server refused to reserve ``max_bytes``."""
    if exc.err_code == _TOO_BIG:
        raise StorageLimitError(
            f"the NATS server cannot reserve {max_bytes} bytes for {name} "
            f"({exc.description}): lower {env_name} or raise the server's JetStream "
            "max_file_store"
        ) from exc
