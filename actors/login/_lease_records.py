"""The actor's side of the lease store: renewals kept beside the log, and ends fenced there.

A renewal writes no event. The actor writes the extended expiry to the tenant's lease record
(:mod:`actors.lease_store`) with compare-and-set, and keeps it in its state. The record is
taken into account only for the lease the log says runs (same ``lease_id`` and ``fence``), and
only ever extends it: the log stays the authority on which lease runs, the store only on how
long.

Two actors of one tenant may run at once (two instances answering the tenant's requests, or a
stale one and its successor), each with its own view of the expiry. They agree through the
record's revision:

- an actor acknowledges a renewal only after its compare-and-set on the record succeeded, and
  only if the record does not say the lease ended;
- an actor ends a lease (``expired`` when its own view says the time is up, ``released`` or
  ``revoked`` on the holder's request) only after it re-read the record and marked it
  ``ended`` with compare-and-set; a record that shows the lease renewed past now is adopted
  instead, and nothing ends.

Both writes are compare-and-set on one key, so they are ordered: a renewal either lands before
the mark (and the ender sees it) or after it (and sees ``ended``: ``lease_lost``). A new lease
needs the old one ended in the log, and the log has one writer per tenant (its own
compare-and-set), so no renewal can outlive the end of its lease, and no actor grants a lease
over one that another renewed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Final

from actors.lease_store import LeaseRecord, LeaseStoreConflictError, LeaseStoreUnavailableError

from ._ledger import Ledger
from ._state import HeldLease

__all__ = ["LeaseEndedError", "adopt_renewal", "mark_ended", "store_renewal"]

_log = logging.getLogger("tgqr.actor")
_CAS_TRIES: Final = 5


class LeaseEndedError(Exception):
    """Raised by :func:`store_renewal` when the record says the lease ended (another actor of
    the tenant is ending it): the renewal is ``lease_lost``."""


def _adopt(ledger: Ledger, lease: HeldLease, record: LeaseRecord) -> None:
    """Fold what ``record`` says about ``lease`` into the ledger's state."""
    if not record.names(lease.lease_id, lease.fence):
        return
    if record.ended:
        until = min(lease.expires_at, record.expires_at)
    else:
        until = max(lease.expires_at, record.expires_at)
    if until != lease.expires_at:
        ledger.state = replace(ledger.state, lease=replace(lease, expires_at=until))


async def adopt_renewal(ledger: Ledger) -> None:
    """Take the record's expiry of the running lease into the state: a renewal stored by this
    actor before a restart, or by another actor of the tenant.

    Raises:
        LeaseStoreError: the store failed.
    """
    lease = ledger.state.lease
    if lease is None:
        return
    stored = await ledger.deps.leases.get(ledger.tenant)
    if stored is not None:
        _adopt(ledger, lease, stored.record)


async def store_renewal(ledger: Ledger, renewed: HeldLease) -> None:
    """Write ``renewed``'s expiry to the record (compare-and-set; read again on a conflict).

    Raises:
        LeaseEndedError: the record says the lease ended.
        LeaseStoreError: the store failed, or kept changing under the writes.
    """
    store, tenant = ledger.deps.leases, ledger.tenant
    record = LeaseRecord(
        lease_id=renewed.lease_id, fence=renewed.fence, expires_at=renewed.expires_at
    )
    for _ in range(_CAS_TRIES):
        stored = await store.get(tenant)
        ours = stored is not None and stored.record.names(renewed.lease_id, renewed.fence)
        if ours and stored is not None and stored.record.ended:
            raise LeaseEndedError
        try:
            await store.put(tenant, record, revision=0 if stored is None else stored.revision)
        except LeaseStoreConflictError:
            continue
        return
    raise LeaseStoreUnavailableError(f"the lease record of {tenant!r} kept changing")


async def mark_ended(ledger: Ledger, lease: HeldLease, now: datetime, *, expiring: bool) -> bool:
    """Mark ``lease`` ended in the record before its end is appended; whether it may end.

    ``expiring``: the actor's own view says the time is up; if the record shows the lease
    renewed past ``now``, that renewal is adopted into the state and False returned (the lease
    runs on). Otherwise (and always for a release) the record is marked ``ended`` and True
    returned.

    Raises:
        LeaseStoreError: the store failed, or kept changing under the writes.
    """
    store, tenant = ledger.deps.leases, ledger.tenant
    ended = LeaseRecord(lease_id=lease.lease_id, fence=lease.fence, expires_at=now, ended=True)
    for _ in range(_CAS_TRIES):
        stored = await store.get(tenant)
        mine = stored is not None and stored.record.names(lease.lease_id, lease.fence)
        if stored is not None and mine:
            if stored.record.ended:
                return True
            if expiring and stored.record.expires_at > now:
                _adopt(ledger, lease, stored.record)
                _log.info(
                    "lease renewed elsewhere tenant=%s lease=%s until=%s",
                    tenant,
                    lease.lease_id,
                    stored.record.expires_at.isoformat(),
                )
                return False
        try:
            await store.put(tenant, ended, revision=0 if stored is None else stored.revision)
        except LeaseStoreConflictError:
            continue
        return True
    raise LeaseStoreUnavailableError(f"the lease record of {tenant!r} kept changing")
