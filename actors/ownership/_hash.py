"""Which partition a tenant is in, and which live instance should own a partition.

``partition_of`` is FNV-1a (32 bit) of the tenant id modulo the partition count: the function
nats-server's subject mapping ``partition(n, token)`` applies, so an operator could route by
subject on the server with the same split. ``preferred`` is rendezvous (highest random weight)
hashing: every instance computes the same winner from the same member set, and a member joining
or leaving moves only the partitions it wins or held (about ``1/N`` of them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

__all__ = ["partition_of", "preferred"]

_FNV_OFFSET: Final = 0x811C9DC5
_FNV_PRIME: Final = 0x01000193


def partition_of(tenant: str, partitions: int) -> int:
    """The partition of ``tenant``: FNV-1a of its UTF-8 bytes modulo ``partitions``."""
    value = _FNV_OFFSET
    for byte in tenant.encode():
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value % partitions


def _weight(partition: int, member: str) -> bytes:
    return hashlib.blake2b(f"{partition}/{member}".encode(), digest_size=8).digest()


def preferred(partition: int, members: Iterable[str]) -> str | None:
    """The member that should own ``partition`` (None: no members)."""
    best: tuple[bytes, str] | None = None
    for member in members:
        candidate = (_weight(partition, member), member)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[1]
