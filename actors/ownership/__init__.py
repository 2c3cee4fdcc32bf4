"""Several instances: each tenant owned by exactly one live instance (README, "Running more
than one").

Tenants are hashed into partitions (:func:`partition_of`); each partition is owned by one
instance, recorded in the JetStream KV bucket ``tgqr_owners`` by compare-and-set, with the
owner's heartbeat (a key with a per-message TTL) as its lease and the claim's revision as the
fence every append carries. No consensus of our own: JetStream's stream leader orders the
writes and the bucket decides every race.
"""

from __future__ import annotations

from ._bucket import OWNERS_BUCKET, CasFailedError, OwnersBucket
from ._hash import partition_of, preferred
from ._manager import FENCE_HEADER, NotOwnerError, Ownership, OwnershipSettings
from ._plan import Claim, Drop, OwnerView, Release, plan

__all__ = [
    "FENCE_HEADER",
    "OWNERS_BUCKET",
    "CasFailedError",
    "Claim",
    "Drop",
    "NotOwnerError",
    "OwnerView",
    "OwnersBucket",
    "Ownership",
    "OwnershipSettings",
    "Release",
    "partition_of",
    "plan",
    "preferred",
]
