"""Releasing a quarantined tenant: the operator's side of ``tgqr tenant repair``.

The bad messages stay in the stream (the audit still shows them); a ``QuarantineLifted`` event,
sealed with the chain key like every other event, names their sequences, so every reader (on
any instance) leaves them out of the chain from then on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from events import EventLog, QuarantineLifted, TenantLog

__all__ = ["lift_quarantine"]


async def lift_quarantine(
    log: EventLog, tenant: str, *, clock: Callable[[], datetime], note: str = ""
) -> TenantLog:
    """Release ``tenant`` if it is quarantined; its log as it verifies afterwards.

    Raises:
        ConcurrencyConflictError: the tenant's log moved on meanwhile (try again).
        EventLogError: the log could not be read or written.
    """
    before = await log.load_tenant(tenant)
    if not before.quarantined:
        return before
    attempt = before.records[-1].event.attempt if before.records else 0
    lifted = QuarantineLifted(
        tenant=tenant,
        attempt=attempt,
        at=clock(),
        sequences=tuple(bad.seq for bad in before.bad),
        note=note[:200],
    )
    await log.append(tenant, [lifted], before.head)
    return await log.load_tenant(tenant)
