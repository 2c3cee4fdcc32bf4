"""The size policy of tgqr's stores, and how full they are (no nats here).

History is never dropped to make room: the event stream and the buckets refuse new writes when
they reach their limits (JetStream's discard policy ``new``), and the service warns (in
``tgqr.query.health`` and in its log) once one is :data:`FILL_WARNING` full. Every limit is
finite and can be set from the environment (:meth:`StoragePolicy.from_env`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FILL_WARNING",
    "StorageLimits",
    "StoragePolicy",
    "StorageUse",
    "storage_warning",
]

FILL_WARNING: Final = 0.8
"""The fill (of bytes or of messages) from which a store is reported as filling up."""

_KIB: Final = 1024
_MIB: Final = 1024 * _KIB
_GIB: Final = 1024 * _MIB


@dataclass(frozen=True, slots=True)
class StorageLimits:
    """The limits of one stream or bucket: total bytes and messages it may hold, the largest
    message (headers included) and the most consumers at once."""

    max_bytes: int
    max_msgs: int
    max_msg_size: int
    max_consumers: int

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 1:
                raise ValueError(f"{field.name} must be at least 1")


@dataclass(frozen=True, slots=True)
class StoragePolicy:
    """The limits of the event stream and of each bucket.

    The defaults fit the embedded server (``max_file_store: 8GB``, of which the log's mirror
    in the clients' account may take as much as the log): the limits reserve about 4 GiB.
    """

    log: StorageLimits = StorageLimits(
        max_bytes=3 * _GIB, max_msgs=50_000_000, max_msg_size=256 * _KIB, max_consumers=4096
    )
    sessions: StorageLimits = StorageLimits(
        max_bytes=512 * _MIB, max_msgs=10_000_000, max_msg_size=64 * _KIB, max_consumers=256
    )
    leases: StorageLimits = StorageLimits(
        max_bytes=128 * _MIB, max_msgs=10_000_000, max_msg_size=64 * _KIB, max_consumers=256
    )
    dedupe: StorageLimits = StorageLimits(
        max_bytes=256 * _MIB, max_msgs=10_000_000, max_msg_size=64 * _KIB, max_consumers=256
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoragePolicy:
        """The defaults, with any of ``TGQR_<STORE>_MAX_BYTES``, ``_MAX_MSGS``,
        ``_MAX_MSG_SIZE`` and ``_MAX_CONSUMERS`` (STORE: ``LOG``, ``SESSIONS``, ``LEASES``,
        ``DEDUPE``) replacing them. Sizes take a ``K``, ``M`` or ``G`` suffix (powers of 1024).

        Raises:
            ValueError: a value is not a whole number of at least 1 (the message names it).
        """
        policy = cls()
        changes: dict[str, StorageLimits] = {}
        for store in ("log", "sessions", "leases", "dedupe"):
            limits: StorageLimits = getattr(policy, store)
            values: dict[str, int] = {}
            for field in dataclasses.fields(StorageLimits):
                name = f"TGQR_{store.upper()}_{field.name.upper()}"
                raw = env.get(name, "").strip()
                if raw:
                    values[field.name] = _parse_size(name, raw)
            if values:
                changes[store] = dataclasses.replace(limits, **values)
        return dataclasses.replace(policy, **changes)


def _parse_size(name: str, raw: str) -> int:
    scale = {"K": _KIB, "M": _MIB, "G": _GIB}.get(raw[-1:].upper(), 1)
    digits = raw[:-1] if scale > 1 else raw
    if not digits.isdigit() or int(digits) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, like 512M (it is {raw!r})")
    return int(digits) * scale


@dataclass(frozen=True, slots=True)
class StorageUse:
    """How full one store is: ``name`` (the stream's), what it holds and its limits
    (0: unlimited, as an external server's stream may be)."""

    name: str
    bytes: int
    msgs: int
    max_bytes: int = 0
    max_msgs: int = 0

    @property
    def fill(self) -> float:
        """The larger of the bytes' and the messages' share of their limits (0 to 1)."""
        shares = [
            used / limit
            for used, limit in ((self.bytes, self.max_bytes), (self.msgs, self.max_msgs))
            if limit > 0
        ]
        return min(1.0, max(shares, default=0.0))

    @property
    def filling(self) -> bool:
        """Whether the store is at least :data:`FILL_WARNING` full."""
        return self.fill >= FILL_WARNING

    def describe(self) -> str:
        """One line for a warning: which store, how full, what to do."""
        max_bytes = self.max_bytes or "unlimited"
        max_msgs = self.max_msgs or "unlimited"
        return (
            f"{self.name} is {self.fill:.0%} full ({self.bytes} of {max_bytes} bytes, "
            f"{self.msgs} of {max_msgs} messages); when full it refuses new writes and "
            "deletes nothing: raise its limits (TGQR_*_MAX_BYTES, TGQR_*_MAX_MSGS) and the "
            "server's store, or move the data to a larger server"
        )


def storage_warning(uses: Sequence[StorageUse]) -> str | None:
    """One warning naming every store that is filling up (None: none is)."""
    filling = [use.describe() for use in uses if use.filling]
    return "; ".join(filling) if filling else None
