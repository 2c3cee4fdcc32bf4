"""What a login actor touches, wired at the composition root, and the client it opens.

:func:`open_client` is ``TelegramPort.open_client`` whose exit is shielded, bounded and timed
(the ``session_cleanup`` metric): a client is disconnected on every path, cancellation included.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import anyio

from actors.lease_store import LeaseStore, MemoryLeaseStore
from actors.telegram import SessionRevokedError, TelegramClientPort, TelegramPort
from actors.telemetry import Telemetry
from actors.vault import SessionVault
from events import EventLog, LoggedOut

from ._inputs import Decision
from ._state import Policy

__all__ = ["ActorDeps", "drop_pre_auth", "log_out_before", "open_client"]

_log = logging.getLogger("tgqr.actor")
_DEFAULT_POLICY = Policy()
_CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ActorDeps:
    """Everything an actor touches. ``hydration`` bounds how many actors read their log at once;
    ``leases`` keeps renewed lease expiries (share one store between every actor of a tenant,
    across instances: the service passes the ``tgqr_leases`` bucket)."""

    log: EventLog
    telegram: TelegramPort
    vault: SessionVault
    clock: Callable[[], datetime]
    sleep: Callable[[float], Awaitable[None]]
    random: Callable[[], float]
    policy: Policy = _DEFAULT_POLICY
    telemetry: Telemetry | None = None
    hydration: anyio.CapacityLimiter | None = None
    leases: LeaseStore = field(default_factory=MemoryLeaseStore)


@asynccontextmanager
async def open_client(
    deps: ActorDeps, tenant: str, session: str | None = None
) -> AsyncIterator[TelegramClientPort]:
    """A Telegram client for ``tenant`` (from ``session``, or a fresh one).

    Its close runs shielded, at most 10 s, and is timed. Raises what ``open_client`` raises.
    """
    cm = deps.telegram.open_client(tenant, session)
    client = await cm.__aenter__()
    try:
        yield client
    except BaseException as exc:
        await _close(deps, tenant, cm.__aexit__(type(exc), exc, exc.__traceback__))
        raise
    await _close(deps, tenant, cm.__aexit__(None, None, None))


async def _close(deps: ActorDeps, tenant: str, closing: Awaitable[bool | None]) -> None:
    started = deps.clock()
    with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
        await closing
    seconds = (deps.clock() - started).total_seconds()
    if deps.telemetry is not None:
        deps.telemetry.session_cleanup(tenant, seconds)
    _log.debug("client closed tenant=%s", tenant)


async def drop_pre_auth(deps: ActorDeps, tenant: str) -> None:
    """Forget a half-finished 2FA session of an attempt that did not authorize (shielded)."""
    with anyio.CancelScope(shield=True):
        entry = await deps.vault.get(tenant)
        if entry is not None and entry.stage == "pre_auth":
            await deps.vault.delete(tenant)


def log_out_before(deps: ActorDeps, tenant: str) -> Callable[[Decision], Awaitable[None]]:
    """A ``before`` hook for :meth:`Ledger.apply`: when the decision stores ``LoggedOut``, log
    the stored session out of Telegram and drop it first.

    Raises (from the hook): TelegramError (nothing is stored then), VaultError.
    """

    async def before(decision: Decision) -> None:
        if not any(isinstance(e, LoggedOut) for e in decision.events):
            return
        entry = await deps.vault.get(tenant)
        if entry is not None:
            async with open_client(deps, tenant, entry.session) as client:
                with contextlib.suppress(SessionRevokedError):  # already dead: fine
                    await client.log_out()
        await deps.vault.delete(tenant)

    return before
