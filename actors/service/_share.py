"""What an instance does when partitions come or go: resume their tenants, or stop them."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from actors.login import Mail
from actors.ownership import Ownership
from actors.supervision import MovedError, TenantSupervisor
from events import EventLog

__all__ = ["Share"]


class Share:
    """``on_gain`` / ``on_lose`` of :class:`~actors.ownership.Ownership` (``bind`` first)."""

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        self._supervisor: TenantSupervisor[Mail] | None = None
        self._ownership: Ownership | None = None

    def bind(self, supervisor: TenantSupervisor[Mail], ownership: Ownership) -> None:
        self._supervisor = supervisor
        self._ownership = ownership

    async def resume(self, partitions: Sequence[int]) -> None:
        """Start the actors of the partitions' tenants: each folds its log and goes on from
        where the last owner left it (an idle tenant's actor just ends)."""
        supervisor, ownership = self._bound()
        wanted = set(partitions)
        for tenant in await self._log.tenants():
            if tenant.startswith("_") or ownership.partition(tenant) not in wanted:
                continue  # "_" names the service's own chains, never a tenant
            with contextlib.suppress(MovedError):
                supervisor.ensure_running(tenant)

    async def stop(self, partitions: Sequence[int]) -> None:
        """Stop the partitions' actors and wait until each has closed its Telegram client."""
        supervisor, ownership = self._bound()
        gone = set(partitions)
        await supervisor.stop_where(lambda tenant: ownership.partition(tenant) in gone)

    def _bound(self) -> tuple[TenantSupervisor[Mail], Ownership]:
        if self._supervisor is None or self._ownership is None:
            raise RuntimeError("Share.bind was not called")
        return self._supervisor, self._ownership
