"""What a login actor touches, wired at the composition root, and the client it opens.

:func:`open_client` is ``TelegramPort.open_client`` whose exit is shielded, bounded and timed
(the ``session_cleanup`` metric): a client is disconnected on every path, cancellation included.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import anyio

from actors.lease_store import LeaseStore, MemoryLeaseStore
from actors.telegram import (
    Device,
    Proxy,
    ProxyUrlError,
    SessionRevokedError,
    TelegramClientPort,
    TelegramConfigError,
    TelegramPort,
)
from actors.telemetry import Telemetry
from actors.vault import SessionVault
from events import DeviceInfo, EventLog, LoggedOut

from ._inputs import Decision
from ._state import Policy

__all__ = [
    "ActorDeps",
    "device_for",
    "drop_pre_auth",
    "log_out_before",
    "open_client",
    "proxy_for",
]

_log = logging.getLogger("tgqr.actor")
_DEFAULT_POLICY = Policy()
_CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ActorDeps:
    """Everything an actor touches. ``hydration`` bounds how many actors read their log at once;
    ``leases`` keeps renewed lease expiries (share one store between every actor of a tenant,
    across instances: the service passes the ``tgqr_leases`` bucket); ``device``: how every
    tenant's client names itself unless the tenant's ``start`` said otherwise; ``proxy``: the
    service's proxy (``TGQR_PROXY``) for tenants that set none of their own."""

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
    device: Device = field(default_factory=Device)
    proxy: Proxy | None = None
    telegram_gate: Callable[[], None] | None = None
    """Before a new login that dials Telegram directly: raises BreakerOpenError while the DC
    it would dial is down (its circuit breaker is open); None: no breakers."""


def device_for(deps: ActorDeps, info: DeviceInfo | None) -> Device:
    """The device a tenant's clients send: the service's, with the tenant's fields over it."""
    if info is None:
        return deps.device
    return deps.device.overridden(
        model=info.model, system=info.system, app_version=info.app_version, lang=info.lang
    )


async def proxy_for(deps: ActorDeps, tenant: str) -> Proxy | None:
    """The proxy of ``tenant``'s connections: its own (sealed in the vault), else the
    service's, else None (directly).

    Raises:
        VaultError: the vault failed. TelegramConfigError: the stored URL no longer parses.
    """
    url = await deps.vault.get_proxy(tenant)
    if url is None:
        return deps.proxy
    try:
        return Proxy.parse(url)
    except ProxyUrlError as exc:
        raise TelegramConfigError(f"the stored proxy of {tenant} is refused: {exc}") from None


@asynccontextmanager
async def open_client(
    deps: ActorDeps, tenant: str, session: str | None = None, *, device: DeviceInfo | None = None
) -> AsyncIterator[TelegramClientPort]:
    """A Telegram client for ``tenant`` (from ``session``, or a fresh one), naming itself as
    the tenant's ``device`` (:func:`device_for`).

    Its close runs shielded, at most 10 s, and is timed. Raises what ``open_client`` raises.
    """
    proxy = await proxy_for(deps, tenant)
    cm = deps.telegram.open_client(tenant, session, device=device_for(deps, device), proxy=proxy)
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


def log_out_before(
    deps: ActorDeps, tenant: str, device: DeviceInfo | None = None, *, strict: bool = False
) -> Callable[[Decision], Awaitable[None]]:
    """A ``before`` hook for :meth:`Ledger.apply`: when the decision stores ``LoggedOut``, log
    the stored session out of Telegram (as the tenant's ``device``) and drop it first. A session
    Telegram no longer knows is dropped all the same; ``strict``: the hook then raises
    :class:`SessionRevokedError` (after dropping it) so the caller records the revocation.

    Raises (from the hook): TelegramError (nothing is stored then), VaultError.
    """

    async def before(decision: Decision) -> None:
        if not any(isinstance(e, LoggedOut) for e in decision.events):
            return
        entry = await deps.vault.get(tenant)
        if entry is not None:
            try:
                async with open_client(deps, tenant, entry.session, device=device) as client:
                    await client.log_out()
            except SessionRevokedError:  # already dead (ended from the phone)
                await deps.vault.delete(tenant)
                if strict:
                    raise
        await deps.vault.delete(tenant)

    return before
