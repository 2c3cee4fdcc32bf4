"""This instance's share of the tenants, kept up to date against the owners bucket.

:class:`Ownership` runs the loop (heartbeat, members, the plan of :mod:`._plan`, claims and
releases) and answers, without I/O, the questions the rest of the service asks: which
instance owns a tenant (the router), whether this one may run it (the supervisor) and with
which fence it writes (the event log).

The lease this instance holds on its partitions is its heartbeat: the server drops it
``ttl_s`` after the last one it stored, and another instance may then take the partitions
over. This instance counts its own lease from the moment it *sent* its last acknowledged
heartbeat, minus ``margin_s``, so it stops its actors and refuses to append before any other
instance can have claimed their partitions (clock rates, not clocks, must agree).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import TaskStatus

from events import FENCE_HEADER

from ._bucket import UNAVAILABLE, CasFailedError, OwnersBucket
from ._hash import partition_of
from ._plan import Claim, Drop, OwnerView, Release, plan

__all__ = ["FENCE_HEADER", "NotOwnerError", "Ownership", "OwnershipSettings"]

log = logging.getLogger("tgqr.ownership")


Partitions = Callable[[Sequence[int]], Awaitable[None]]


class NotOwnerError(Exception):
    """This instance does not hold the tenant's partition (now): nothing was written."""

    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant} is not owned by this instance (now); retry")
        self.tenant = tenant


@dataclass(frozen=True, slots=True)
class OwnershipSettings:
    """How tenants are split and how fast a dead instance's share moves (README, "Running
    more than one")."""

    partitions: int = 32
    ttl_s: int = 3
    """A heartbeat's life on the server: an instance dead this long loses its partitions."""
    tick_s: float = 0.25
    grace_s: float = 1.5
    settle_s: float = 1.0
    margin_s: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= 4096:
            raise ValueError("partitions must be from 1 to 4096")
        if self.ttl_s < 1:
            raise ValueError("the ownership TTL is whole seconds, at least 1")
        if self.margin_s >= self.ttl_s:
            raise ValueError("the margin must be shorter than the TTL")


class Ownership:
    """Start with ``await tg.start(ownership.run)``; ``on_gain`` / ``on_lose`` are awaited with
    the partitions that came or went (``on_lose`` before a partition is released)."""

    def __init__(
        self,
        me: str,
        bucket: OwnersBucket,
        settings: OwnershipSettings,
        *,
        monotonic: Callable[[], float],
        on_gain: Partitions,
        on_lose: Partitions,
    ) -> None:
        self.me = me
        self.settings = settings
        self._bucket = bucket
        self._monotonic = monotonic
        self._on_gain = on_gain
        self._on_lose = on_lose
        self.view = OwnerView(me, settings.partitions)
        self._valid_until = 0.0
        self._next_beat = 0.0
        self._changed = anyio.Event()
        self._synced = anyio.Event()
        self._beat_failing = False
        self._quiet_until = 0.0

    # -- what the rest of the service asks (no I/O) ---------------------------------------

    def partition(self, tenant: str) -> int:
        return partition_of(tenant, self.settings.partitions)

    def owner_of(self, tenant: str) -> str | None:
        """The instance that owns ``tenant`` now, as far as this one knows (None: nobody)."""
        owner = self.view.owners.get(self.partition(tenant), ("", 0))[0]
        return owner or None

    def fence(self, tenant: str) -> int | None:
        """The fence this instance holds ``tenant``'s partition with, while its lease is valid."""
        if self._monotonic() >= self._valid_until:
            return None
        return self.view.held.get(self.partition(tenant))

    def holds(self, tenant: str) -> bool:
        return self.fence(tenant) is not None

    def problems(self) -> list[str]:
        """For ``/readyz``: why this instance cannot own tenants now (empty: it can)."""
        if self._monotonic() < self._valid_until:
            return []
        return ["ownership: no heartbeat stored in time (this instance owns no tenant now)"]

    def holds_partition(self, partition: int) -> bool:
        """Whether this instance holds ``partition`` now (partition 0's holder also runs the
        jobs one instance does for all, such as the automatic backups)."""
        return self._monotonic() < self._valid_until and partition in self.view.held

    def fence_header(self, tenant: str) -> str:
        """The :data:`FENCE_HEADER` value for an append of ``tenant``'s.

        Raises:
            NotOwnerError: this instance does not hold the tenant's partition (now).
        """
        fence = self.fence(tenant)
        if fence is None:
            raise NotOwnerError(tenant)
        return f"{self.me} {self.partition(tenant)}/{fence}"

    async def changed(self) -> None:
        """Until the next change of ownership seen here."""
        await self._changed.wait()

    # -- the loop -------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Take part until cancelled; then stop the actors, release every partition and leave
        (shielded, a few seconds at most) so the others take over at once."""
        sub = await self._bucket.follow_partitions(self._on_change)
        try:
            with anyio.move_on_after(5):
                await self._synced_or_empty()
            await self._tick()
            task_status.started()
            while True:
                await anyio.sleep(self.settings.tick_s)
                try:
                    await self._tick()
                except Exception:  # a surprise must not end the instance: the lease guards
                    log.exception("ownership tick failed; the next one tries again")
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self._leave()
                await sub.unsubscribe()

    async def _synced_or_empty(self) -> None:
        try:
            if not await self._bucket.has_partitions():
                return
        except UNAVAILABLE as exc:
            log.info("owners bucket not readable yet (%s)", type(exc).__name__)
        await self._synced.wait()

    def _on_change(self, partition: int, owner: str, revision: int, pending: int) -> None:
        if pending == 0:
            self._synced.set()
        if not 0 <= partition < self.settings.partitions:
            return
        known = self.view.owners.get(partition)
        if known is not None and known[1] >= revision:
            return
        self.view.owners[partition] = (owner, revision)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _tick(self) -> None:
        now = self._monotonic()
        await self._heartbeat(now)
        try:
            alive = await self._bucket.members()
        except UNAVAILABLE as exc:
            log.debug("members unreadable: %s", type(exc).__name__)
        else:
            members = self.view.members
            for gone in set(members) - alive:
                del members[gone]
            for member in alive - set(members):
                members[member] = now
        if now >= self._valid_until:
            self.view.members.pop(self.me, None)  # lapsed: not alive, whatever the server says
            if self.view.held:
                log.warning("ownership lapsed (no heartbeat stored in time): stopping actors")
                await self._lose(list(self.view.held))
            return
        actions = plan(
            self.view,
            now,
            grace_s=self.settings.grace_s,
            settle_s=self.settings.settle_s,
            steal=now >= self._quiet_until,
        )
        await self._apply(actions)

    async def _heartbeat(self, now: float) -> None:
        if now < self._next_beat:
            return
        try:
            await self._bucket.heartbeat(self.me, self.settings.ttl_s)
        except UNAVAILABLE as exc:
            if not self._beat_failing:
                log.warning("heartbeat not stored (%s); retrying", type(exc).__name__)
            self._beat_failing = True
            self._next_beat = now + self.settings.tick_s
            return
        if self._beat_failing:
            log.info("heartbeat stored again")
            # The bucket was out of reach, likely for the others too (an election): their
            # heartbeats may have expired meanwhile. Give them a TTL to renew before taking
            # their partitions.
            self._quiet_until = now + self.settings.ttl_s
        self._beat_failing = False
        self._valid_until = now + self.settings.ttl_s - self.settings.margin_s
        self._next_beat = now + self.settings.ttl_s / 4

    async def _apply(self, actions: list[Claim | Release | Drop]) -> None:
        lost = [a.partition for a in actions if isinstance(a, Drop)]
        if lost:
            await self._lose(lost)
        releases = [a for a in actions if isinstance(a, Release)]
        if releases:
            await self._lose([a.partition for a in releases])
            for action in releases:
                await self._cas(action.partition, "", action.revision)
        gained = [
            action.partition
            for action in actions
            if isinstance(action, Claim)
            and await self._cas(action.partition, self.me, action.revision)
        ]
        if gained:
            log.info("claimed partitions %s", _ranges(gained))
            self._notify()
            await self._on_gain(gained)

    async def _cas(self, partition: int, owner: str, revision: int) -> bool:
        try:
            if owner:
                fence = await self._bucket.claim(partition, owner, revision)
            else:
                await self._bucket.release(partition, revision)
                fence = 0
        except (CasFailedError, *UNAVAILABLE) as exc:
            log.debug("partition %d: %s", partition, type(exc).__name__)
            return False
        if owner:
            self.view.held[partition] = fence
            self.view.owners[partition] = (owner, fence)
        return True

    async def _lose(self, partitions: list[int]) -> None:
        for partition in partitions:
            self.view.held.pop(partition, None)
        self._notify()
        log.info("stopping partitions %s", _ranges(partitions))
        await self._on_lose(partitions)

    async def _leave(self) -> None:
        held = dict(self.view.held)
        if held:
            await self._lose(list(held))
            for partition, fence in held.items():
                await self._cas(partition, "", fence)
        try:
            await self._bucket.leave(self.me)
        except UNAVAILABLE as exc:
            log.info("could not leave at once (%s): the heartbeat expires", type(exc).__name__)


def _ranges(partitions: Sequence[int]) -> str:
    return ",".join(str(p) for p in sorted(partitions))
