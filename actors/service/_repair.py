"""Releasing a quarantined tenant: the operator's side of ``tgqr tenant repair``.

The bad messages stay in the stream (the audit still shows them); a ``QuarantineLifted`` event,
sealed with the chain key like every other event, names their sequences, so every reader (on
any instance) leaves them out of the chain from then on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from events import EventLog, QuarantineLifted, TenantLog

__all__ = ["QuarantineChangedError", "lift_quarantine"]

NOTE_LIMIT = 200
"""The longest note a ``QuarantineLifted`` keeps (longer ones are cut)."""


class QuarantineChangedError(Exception):
    """Raised by :func:`lift_quarantine` when the tenant's bad messages are no longer the ones
    the caller confirmed (more arrived, or another operator released them): nothing is written.
    """


async def lift_quarantine(
    log: EventLog,
    tenant: str,
    *,
    clock: Callable[[], datetime],
    note: str = "",
    sequences: Collection[int] | None = None,
) -> TenantLog:
    """Release ``tenant`` if it is quarantined; its log as it verifies afterwards.

    ``sequences``: the bad sequences the operator saw and confirmed; the release happens only
    if they are exactly the tenant's bad messages now (None: whatever they are). Blocks on the
    log (two reads and one append).

    Raises:
        QuarantineChangedError: ``sequences`` differs from the tenant's bad messages.
        ConcurrencyConflictError: the tenant's log moved on meanwhile (try again).
        TenantQuarantinedError: another bad message was stored meanwhile (try again).
        EventLogError: the log could not be read or written.
    """
    before = await log.load_tenant(tenant)
    bad = tuple(b.seq for b in before.bad)
    if sequences is not None and set(sequences) != set(bad):
        shown = ", ".join(map(str, bad)) or "none"
        raise QuarantineChangedError(
            f"the bad messages of {tenant} changed since they were shown (now: {shown})"
        )
    if not before.quarantined:
        return before
    attempt = before.records[-1].event.attempt if before.records else 0
    lifted = QuarantineLifted(
        tenant=tenant, attempt=attempt, at=clock(), sequences=bad, note=note[:NOTE_LIMIT]
    )
    await log.append(tenant, [lifted], before.head)
    return await log.load_tenant(tenant)
