"""The composition root: wires events, actors and projections into one task tree.

``run_service`` owns, in one task group: the Telegram simulator (when there are no
credentials), the tenant supervisor, the command endpoint, the simulator's phone endpoint,
the projector with its query endpoint, and the session validator. Each part restarts with
backoff if it fails after starting. Cancelling the tree stops taking commands, disconnects
every Telegram client (in each actor's ``finally``), flushes the projector and drains NATS.
"""

from __future__ import annotations

import gc
import logging
import random
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from nats.aio.client import Client

from actors.gateway import CommandEndpoint, KvDedupe, RateLimiter, Router, SessionEndpoint
from actors.keyfiles import private_dir
from actors.lease_store import KvLeaseStore
from actors.login import (
    ActorDeps,
    Mail,
    Mailbox,
    refuse_mail,
    run_actor,
)
from actors.ownership import OwnersBucket, Ownership
from actors.sim import Simulator
from actors.supervision import TenantSupervisor
from actors.telegram import TelegramPort
from actors.telemetry import Telemetry, configure_from_env, traceparents
from actors.vault import KvSessionVault, load_key_ring
from events import ChainKey, verify_tail
from events.jetstream import STREAM, JetStreamEventLog, ensure_stream
from projections import Projector, open_projector, serve_queries

from ._backups import back_up_as_leader
from ._config import ConfigError, ServiceConfig, load_chain_key
from ._instances import instance_id
from ._metrics_http import MetricsServer, bind_metrics, readiness
from ._mirror import ensure_mirror
from ._nats import open_service_nats
from ._page import PageProcess, open_page
from ._parts import keep_running, validate_sessions
from ._share import Share
from ._simmode import wire_telegram

__all__ = ["RunningService", "run_service", "tune_gc"]

log = logging.getLogger("tgqr.service")


def utcnow() -> datetime:
    return datetime.now(UTC)


async def _flush(telemetry: Telemetry) -> None:
    """Export what the exporters still hold (the last spans, a last metrics push), in a
    thread and for at most 5 s: an unreachable collector does not hold up the exit."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
        await anyio.to_thread.run_sync(telemetry.shutdown, abandon_on_cancel=True)


def tune_gc() -> None:
    """Make full garbage collections rare (call once per service process).

    A full collection walks every live object: with 10k live actors it pauses the event loop
    for ~0.3 s, and with CPython's default thresholds it runs every couple of seconds while
    actors are being created. Young collections stay as frequent as by default (they are
    cheap); the oldest generation waits 1000 young-generation passes instead of 10. Measured
    with ``python -m benchmarks.commands``: p99 command latency 716 ms -> 19 ms at 200/s.
    """
    gc.set_threshold(700, 10, 1000)


@dataclass(frozen=True)
class RunningService:
    """Handles on a started service (for the CLI, the demo and tests)."""

    nats_url: str
    nc: Client
    event_log: JetStreamEventLog
    chain_key: ChainKey
    supervisor: TenantSupervisor[Mail]
    sim: Simulator | None
    projector: Projector | None
    page: PageProcess | None = None
    """The end user's page process (its ``url``, ``public_url`` and ``links``), if served."""
    metrics_url: str | None = None
    """Where ``/metrics``, ``/healthz`` and ``/readyz`` are served (``http://HOST:PORT``)."""
    ownership: Ownership | None = None
    """This instance's share of the tenants (its id is ``ownership.me``)."""


async def run_service(
    config: ServiceConfig,
    *,
    telemetry: Telemetry | None = None,
    sim: Simulator | None = None,
    telegram: TelegramPort | None = None,
    task_status: TaskStatus[RunningService] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled. Blocks; reports a :class:`RunningService` once ready.

    ``sim``: a running simulator to use instead of starting one (it then outlives the
    service, as Telegram would: the demo and the tests restart the service against it).
    ``telegram``: a TelegramPort to use instead (the in-process fake of the benchmarks).

    Raises:
        ConfigError, NatsServerError, VaultError: the service could not start.
    """
    private_dir(config.data_dir)
    owned = telemetry is None
    telemetry = telemetry or configure_from_env(scrape=config.metrics is not None)
    rng = random.Random()  # jitter and throttling only, never secrets
    async with AsyncExitStack() as stack:
        if owned:
            stack.push_async_callback(_flush, telemetry)
        url, nc = await stack.enter_async_context(open_service_nats(config, telemetry))
        metrics_sock = bind_metrics(config.metrics) if config.metrics else None
        if metrics_sock is not None:
            stack.callback(metrics_sock.close)
        js = nc.jetstream(timeout=10)
        await ensure_stream(js, replicas=config.replicas, limits=config.storage.log)
        mirror = await ensure_mirror(nc, replicas=config.replicas, limits=config.storage.log)
        if mirror.mirrored:
            log.info("clients read the log's mirror in their own account")
        key = load_chain_key(config.data_dir, create=True)
        event_log = JetStreamEventLog(js, key)
        tail = await verify_tail(event_log, key)
        if tail.key_mismatch:
            # Every event would look forged and every tenant quarantined: refuse at once.
            raise ConfigError(
                f"the chain key (id {key.id}) does not match this log: give every instance "
                "the key the log was written with (TGQR_CHAIN_KEY or DATA/chain.key)"
            )
        vault = await KvSessionVault.open(
            js,
            load_key_ring(config.data_dir, create=True),
            replicas=config.replicas,
            limits=config.storage.sessions,
        )
        projector: Projector | None = None
        if config.projector:
            projector = await stack.enter_async_context(
                open_projector(
                    event_log,
                    config.data_dir / "tgqr.duckdb",
                    key=key,
                    batch_span=(
                        lambda batch: telemetry.batch_span(
                            len(batch), traceparents(m.data for m in batch)
                        )
                    )
                    if telemetry.tracing
                    else None,
                )
            )
        page: PageProcess | None = None
        if config.http is not None:
            page = stack.enter_context(open_page(config))
        async with anyio.create_task_group() as tg:
            serving = anyio.Event()
            member: list[Ownership] = []  # set once the instance takes part
            metrics_url = None
            if metrics_sock is not None:
                metrics = MetricsServer(
                    metrics_sock,
                    telemetry.exposition,
                    readiness(
                        serving,
                        lambda: nc.is_connected,
                        lambda: js.stream_info(STREAM),
                        lambda: [problem for o in member for problem in o.problems()],
                    ),
                )
                metrics_url = metrics.url
                await tg.start(keep_running, "metrics endpoint", metrics.run, rng.random)
            # Also serves the simulator's phone (tgqr.sim.*) when it runs its own simulator.
            wired = await wire_telegram(
                config, tg, nc, event_log, sim=sim, telegram=telegram, rng=rng
            )
            sim = wired.sim
            # At most this many actors fold their history at once: resuming 10k tenants in
            # one burst would time out the log's reads.
            deps = ActorDeps(
                log=event_log,
                telegram=wired.telegram,
                vault=vault,
                clock=utcnow,
                sleep=anyio.sleep,
                random=rng.random,
                policy=config.policy,
                telemetry=telemetry,
                hydration=anyio.CapacityLimiter(128),
                leases=await KvLeaseStore.open(
                    js, replicas=config.replicas, limits=config.storage.leases
                ),
                device=config.device,
                proxy=config.proxy,
                telegram_gate=wired.gate,
            )

            async def runner(
                tenant: str,
                send: MemoryObjectSendStream[Mail],
                receive: MemoryObjectReceiveStream[Mail],
            ) -> None:
                await run_actor(tenant, Mailbox(send, receive), deps)

            share = Share(event_log)
            ownership = Ownership(
                instance_id(config.instance),
                await OwnersBucket.open(nc, replicas=config.replicas),
                config.ownership,
                monotonic=time.monotonic,
                on_gain=share.resume,
                on_lose=share.stop,
            )
            event_log.fence = ownership.fence_header  # every append carries the claim's fence
            member.append(ownership)
            supervisor = TenantSupervisor[Mail](
                runner,
                event_log=event_log,
                clock=utcnow,
                monotonic=time.monotonic,
                sleep=anyio.sleep,
                random=rng.random,
                on_restart=telemetry.actor_restart,
                refuse=refuse_mail,
                on_quarantine=telemetry.tenant_quarantined,
                owns=ownership.holds,
            )

            share.bind(supervisor, ownership)
            await tg.start(supervisor.run)
            telemetry.watch(
                live_actors=lambda: supervisor.statistics().live_actors,
                projector_lag=(lambda: projector.statistics().lag_events) if projector else None,
                owned_partitions=lambda: len(ownership.view.held),
            )
            if wired.breakers is not None:
                breakers = wired.breakers
                telemetry.watch_dcs(
                    lambda: [(dc.dc, dc.state != "closed") for dc in breakers.states()]
                )
            # Claims this instance's share of the partitions and resumes their tenants.
            await tg.start(ownership.run)
            if config.backups.enabled:
                await tg.start(
                    keep_running,
                    "backups",
                    partial(
                        back_up_as_leader, config, nc, ownership, event_log, telemetry, clock=utcnow
                    ),
                    rng.random,
                )
            router = Router(nc, ownership, telemetry=telemetry)
            await tg.start(keep_running, "router", router.run, rng.random)
            # Session leases: an endpoint of the same micro service (served before it opens).
            sessions = SessionEndpoint(
                nc, supervisor, monotonic=time.monotonic, telemetry=telemetry
            )
            await tg.start(keep_running, "session endpoint", sessions.run, rng.random)
            name, subject, handler = sessions.endpoint
            endpoint = CommandEndpoint(
                nc,
                supervisor,
                more_endpoints=[(name, subject, router.route("tgqr.session.", handler))],
                route=lambda handler: router.route("tgqr.cmd.", handler),
                limiter=RateLimiter(),
                links=page.links if page is not None else None,
                dedupe=await KvDedupe.open(
                    js, replicas=config.replicas, limits=config.storage.dedupe
                ),
                monotonic=time.monotonic,
                telemetry=telemetry,
            )
            await tg.start(keep_running, "command endpoint", endpoint.run, rng.random)
            if projector is not None:
                await tg.start(keep_running, "projector", projector.run, rng.random)
                await tg.start(
                    keep_running,
                    "query endpoint",
                    lambda task_status: serve_queries(
                        nc,
                        projector,
                        on_refused=lambda reason: telemetry.requests_refused("query", reason),
                        task_status=task_status,
                    ),
                    rng.random,
                )
            await tg.start(
                keep_running,
                "validator",
                lambda task_status: validate_sessions(
                    supervisor,
                    vault,
                    config.policy.validate_every_s,
                    owns=ownership.holds,
                    task_status=task_status,
                ),
                rng.random,
            )
            if page is not None:
                await tg.start(keep_running, "web page", page.run, rng.random)
            log.info(
                "tgqr serving on %s (%s) as instance %s, owning %d of %d partitions",
                url,
                "simulator" if config.simulated or sim else "Telegram",
                ownership.me,
                len(ownership.view.held),
                config.ownership.partitions,
            )
            serving.set()
            task_status.started(
                RunningService(
                    url,
                    nc,
                    event_log,
                    key,
                    supervisor,
                    sim,
                    projector,
                    page,
                    metrics_url,
                    ownership,
                )
            )
