"""The log's read-only mirror in the clients' account (README, "Roles and credentials").

With the shipped ``nats.conf`` the log lives in account ``TGQR``, which only tgqr itself
reaches, and every client (app, auditor, page) lives in account ``CLIENTS``. Clients read a
mirror of the log there, named like the log (``TGQR_EVENTS``: same subjects, sequences and
headers), so a reader's code is the same on an open server, where it reads the log itself.
The service creates or updates the mirror at start through the stream API that ``CLIENTS``
exports to ``TGQR`` under the prefix ``$JS.clients.API``; on a server without that import
(an open server, or one account) nobody answers there and there is no mirror to keep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import api

from events.jetstream import STREAM
from events.storage import StorageLimits, StoragePolicy

from ._config import ConfigError

__all__ = [
    "CLIENTS_API",
    "MIRROR_CONSUMER_IDLE_S",
    "MIRROR_MAX_CONSUMERS",
    "MirrorError",
    "ensure_mirror",
    "mirror_config",
]

log = logging.getLogger("tgqr.service")

CLIENTS_API: Final = "$JS.clients.API"
"""Where ``TGQR`` reaches the stream API of ``CLIENTS`` (imported in ``nats.conf``)."""
_LOG_API: Final = "$JS.tgqr.API"
"""Where ``CLIENTS`` reaches the consumer API of the log (imported in ``nats.conf``)."""
_DELIVER: Final = "tgqr.mirror"
"""The prefix the log delivers the mirror's messages on (a stream export of ``TGQR``)."""
MIRROR_MAX_CONSUMERS: Final = 500
"""Consumers the clients may hold on the mirror at once (each reader holds one while it reads)."""
MIRROR_CONSUMER_IDLE_S: Final = 300.0
"""A consumer nobody pulls from or listens to for this long is deleted by the server, durable or
not: a client cannot leave consumers behind."""
_TIMEOUT_S: Final = 5.0


class MirrorError(ConfigError):
    """Raised when the clients' account answers but refuses to create or update the mirror."""


@dataclass(frozen=True)
class MirrorState:
    """What :func:`ensure_mirror` found: whether there is a mirror, and how far it has read."""

    mirrored: bool
    last_seq: int = 0


def mirror_config(replicas: int = 1, limits: StorageLimits | None = None) -> api.StreamConfig:
    """The mirror's configuration: the whole log, direct gets, no deletes, bounded consumers,
    and the log's size limits (``limits``; never smaller, or the copy would stall behind it)."""
    limits = limits or StoragePolicy().log
    return api.StreamConfig(
        name=STREAM,
        description="read-only mirror of the tgqr event log (account TGQR)",
        mirror=api.StreamSource(
            name=STREAM, external=api.ExternalStream(api=_LOG_API, deliver=_DELIVER)
        ),
        storage=api.StorageType.FILE,
        num_replicas=replicas,
        allow_direct=True,
        deny_delete=True,
        deny_purge=True,
        max_bytes=limits.max_bytes,
        max_msgs=limits.max_msgs,
        max_msg_size=limits.max_msg_size,
        discard=api.DiscardPolicy.NEW,
        max_consumers=MIRROR_MAX_CONSUMERS,
        consumer_limits=api.StreamConsumerLimits(inactive_threshold=MIRROR_CONSUMER_IDLE_S),
    )


async def ensure_mirror(
    nc: Client, *, replicas: int = 1, limits: StorageLimits | None = None
) -> MirrorState:
    """Create the mirror, or bring its configuration up to date; blocks a round trip or two.

    Returns ``MirrorState(mirrored=False)`` when the server has no clients' account (nobody
    answers on ``$JS.clients.API``).

    Raises:
        MirrorError: the clients' account answered with an error.
    """
    js = nc.jetstream(prefix=CLIENTS_API, timeout=_TIMEOUT_S)
    config = mirror_config(replicas, limits)
    try:
        info = await js.stream_info(STREAM)
    except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
        return MirrorState(mirrored=False)
    except (nats.errors.TimeoutError, TimeoutError):
        # A user without the mirror's permission (a single-account config): refused, which
        # nats-py shows as a timeout. Clients then read the log itself.
        log.warning(
            "no answer from the clients' stream API (%s): no mirror; clients read the log "
            "itself, which the two-account nats.conf of the README prevents",
            CLIENTS_API,
        )
        return MirrorState(mirrored=False)
    except nats.js.errors.NotFoundError:
        try:
            info = await js.add_stream(config)
        except nats.js.errors.APIError as exc:
            raise MirrorError(f"cannot create the log's mirror: {exc.description}") from None
        log.info("created the log's mirror %s in the clients' account", STREAM)
        return MirrorState(mirrored=True, last_seq=info.state.last_seq)
    except nats.js.errors.APIError as exc:
        raise MirrorError(f"cannot read the log's mirror: {exc.description}") from None
    current = info.config
    if (
        (current.max_bytes, current.max_msgs, current.max_msg_size)
        != (config.max_bytes, config.max_msgs, config.max_msg_size)
        or current.max_consumers != config.max_consumers
        or current.consumer_limits != config.consumer_limits
        or not current.allow_direct
        or not current.deny_delete
        or not current.deny_purge
    ):
        try:
            info = await js.update_stream(config)
        except nats.js.errors.APIError as exc:
            raise MirrorError(f"cannot update the log's mirror: {exc.description}") from None
    return MirrorState(mirrored=True, last_seq=info.state.last_seq)
