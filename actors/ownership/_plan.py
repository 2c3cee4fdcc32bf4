"""The ownership decisions, without I/O: what this instance claims, releases or drops now.

Every instance runs the same rules over what it last read from the owners bucket:

- a partition is **free** when its key is absent or empty (released), or names an instance
  whose member key has expired (dead; not while ``steal`` is off: right after the bucket was
  unreachable, the others get a TTL to renew too), or names this instance although it does not
  hold it (its own lease lapsed meanwhile: it takes it back at once);
- the **preferred** live member (rendezvous hashing) claims a free partition at once; any other
  member claims it after it stayed free for ``grace_s`` (members may briefly disagree on who
  is alive, so a partition is never left without an owner);
- a holder releases a partition whose preferred member is another one that has been alive for
  ``settle_s`` (a joining instance takes its fair share; a flapping one moves nothing);
- a holder whose partition's key changed (another instance took it over) drops it at once.

A claim and a release are compare-and-set writes on the key's revision, so the bucket, not
this table, decides who wins; the winning claim's revision is the partition's fence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ._hash import preferred

__all__ = ["Claim", "Drop", "OwnerView", "Release", "plan"]


@dataclass(frozen=True, slots=True)
class Claim:
    partition: int
    revision: int
    """The key's revision the claim expects (0: the key does not exist)."""


@dataclass(frozen=True, slots=True)
class Release:
    partition: int
    revision: int


@dataclass(frozen=True, slots=True)
class Drop:
    """Stop a partition held here: its key now names another owner (or another fence)."""

    partition: int


@dataclass(slots=True)
class OwnerView:
    """What this instance last read and what it holds (all mutable by the manager)."""

    me: str
    partitions: int
    members: dict[str, float] = field(default_factory=dict)
    """Live member ids -> when this instance first saw them alive (monotonic)."""
    owners: dict[int, tuple[str, int]] = field(default_factory=dict)
    """Partition -> (owner id or "" when released, the key's revision)."""
    held: dict[int, int] = field(default_factory=dict)
    """Partitions held here -> their fence (the revision of the claim)."""
    free_since: dict[int, float] = field(default_factory=dict)

    def live(self) -> Iterable[str]:
        return self.members.keys()


def plan(
    view: OwnerView, now: float, *, grace_s: float, settle_s: float, steal: bool = True
) -> list[Claim | Release | Drop]:
    """The actions to take now, given ``view`` (which it updates: ``free_since``)."""
    actions: list[Claim | Release | Drop] = []
    alive = view.me in view.members
    for partition in range(view.partitions):
        owner, revision = view.owners.get(partition, ("", 0))
        best = preferred(partition, view.live())
        fence = view.held.get(partition)
        if fence is not None:
            view.free_since.pop(partition, None)
            if owner != view.me or revision != fence:
                actions.append(Drop(partition))
            elif best not in (None, view.me) and now - view.members[best] >= settle_s:
                actions.append(Release(partition, revision))
            continue
        free = owner in ("", view.me) or (steal and owner not in view.members)
        if not free or not alive:
            view.free_since.pop(partition, None)
            continue
        since = view.free_since.setdefault(partition, now)
        if view.me in (owner, best) or now - since >= grace_s:
            actions.append(Claim(partition, revision))
    return actions
