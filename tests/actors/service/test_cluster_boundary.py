"""The README's 3-node cluster ("Roles and credentials", "A 3-node cluster"), built as it says:
``tgqr-roles.conf`` holds each role's bcrypt hash, then the roles section of the shipped
``nats.conf``; every node runs JetStream with its own store, routes to the three nodes and
includes that file. tgqr runs on it with ``--replicas 3`` as ``service`` (``user:password@`` on
the first URL only), an app and an auditor connect to other nodes as the README shows.

What holds there as on the embedded server: the log's mirror in the clients' account (R3), a
login driven by an app through the mirror and the simulator, replies aimed at the log that write
nothing, and an auditor that verifies the chains from the mirror.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import bcrypt
import pytest
from nats.aio.client import Client

from actors.service import (
    INBOX_PREFIX,
    ROLES,
    Role,
    RunningService,
    ServiceConfig,
    connect_nats,
    resolve_auth,
    run_service,
)
from events.audit import audit_verify
from events.jetstream import STREAM, JetStreamEventLog
from tests.actors.cli._cluster import Cluster, running_cluster
from tests.actors.service.conftest import core_subjects, mirrored
from tests.actors.service.test_boundary import aim_replies_at_bobs_log, log_in

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[3]
NATS_CONF = ROOT / "actors" / "service" / "nats.conf"
BEGIN, END = "# ---- roles: begin ----", "# ---- roles: end ----"


def roles_file(passwords: dict[Role, str]) -> str:
    """``tgqr-roles.conf`` as the README's script writes it: ``TGQR_<ROLE>_PASSWORD`` bcrypt
    hashes (``$2a$``; cost 4 here, as the embedded server uses, for speed), then the lines of
    ``actors/service/nats.conf`` from the roles' begin marker to their end marker."""
    lines = NATS_CONF.read_text(encoding="utf-8").splitlines()
    section = lines[lines.index(BEGIN) : lines.index(END) + 1]
    hashes = [
        f'TGQR_{role.upper()}_PASSWORD: "'
        + bcrypt.hashpw(password.encode(), bcrypt.gensalt(4, b"2a")).decode()
        + '"'
        for role, password in passwords.items()
    ]
    return "\n".join([*hashes, *section]) + "\n"


@dataclass
class OnCluster:
    """tgqr serving on the cluster, and how each role reaches it."""

    running: RunningService
    cluster: Cluster
    passwords: dict[Role, str]
    data: Path
    """The service's data directory (its chain key)."""
    empty: Path
    """A data directory with nothing in it: every credential comes from the URL."""

    def url(self, role: Role, node: int) -> str:
        """``nats://ROLE:PASSWORD@node`` as the README writes it (``node`` is 0-based)."""
        return self.cluster.urls[node].replace("nats://", f"nats://{role}:{self.passwords[role]}@")

    async def connect(self, role: Role, node: int) -> Client:
        """A client of ``role`` on one node, authenticated from its URL; no reconnects."""
        urls = [self.url(role, node)]
        auth = resolve_auth(role, data_dir=self.empty, urls=urls, env={})
        return await connect_nats(urls, auth=auth, reconnect=False)

    async def tgqr(self, *args: str, env: dict[str, str] | None = None) -> str:
        """``tgqr ARGS --data EMPTY`` as a child process: its stdout (it must exit 0)."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
        clean |= {"TGQR_LOG_LEVEL": "WARNING", **(env or {})}
        command = [sys.executable, "-m", "actors.cli", *args, "--data", str(self.empty)]
        with anyio.fail_after(20):
            done = await anyio.run_process(command, env=clean, cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()


@asynccontextmanager
async def readme_cluster(
    directory: Path, passwords: dict[Role, str], sync_interval: str | None = None
) -> AsyncIterator[tuple[Cluster, list[str]]]:
    """The README's 3-node cluster with these roles' passwords, formed, JetStream answering;
    and the URL list role service is given (``service:PASSWORD@`` on the first only)."""
    with running_cluster(
        directory,
        jetstream=True,
        include=roles_file(passwords),
        login=("service", passwords["service"]),
        inbox_prefix=INBOX_PREFIX["service"],
        sync_interval=sync_interval,
    ) as cluster:
        await cluster.formed()
        await cluster.jetstream_ready()
        first, *others = cluster.urls
        yield cluster, [first.replace("nats://", f"nats://service:{passwords['service']}@"),
                        *others]  # fmt: skip


@pytest.fixture
async def on_cluster(tmp_path: Path) -> AsyncIterator[OnCluster]:
    passwords: dict[Role, str] = {role: secrets.token_urlsafe(32) for role in ROLES}
    async with readme_cluster(tmp_path / "cluster", passwords) as (cluster, urls):
        base = ServiceConfig.from_env(
            {}, data_dir=tmp_path / "data", nats=",".join(urls), replicas=3
        )
        config = replace(base, throttle_s=(0.0, 0.0), http=None)
        async with anyio.create_task_group() as tg:
            running: RunningService = await tg.start(
                lambda task_status: run_service(config, task_status=task_status)
            )
            try:
                yield OnCluster(running, cluster, passwords, tmp_path / "data", tmp_path / "empty")
            finally:
                tg.cancel_scope.cancel()


async def test_the_readme_cluster_keeps_the_boundary(on_cluster: OnCluster) -> None:
    """On the README's cluster: the mirror is in CLIENTS with 3 replicas; an app on node 2 logs
    alice in through the simulator, following the mirror; app requests whose reply is
    ``tgqr.evt.bob`` leave bob's chain as he made it; an auditor on node 3 verifies every chain
    from the mirror."""
    running = on_cluster.running
    app = await on_cluster.connect("app", 1)
    info = await app.jetstream(timeout=5).stream_info(STREAM)
    assert info.config.mirror is not None
    assert info.config.mirror.name == STREAM
    assert info.config.num_replicas == 3
    assert info.cluster is not None
    assert len(info.cluster.replicas or []) == 2  # beside the leader: on all three nodes
    js = running.nc.jetstream(timeout=5)
    for name in (STREAM, "KV_tgqr_sessions", "KV_tgqr_leases", "KV_tgqr_dedupe"):
        stored = await js.stream_info(name)
        assert stored.config.num_replicas == 3, name
        assert stored.config.mirror is None, name  # the log and buckets themselves, in TGQR

    await log_in(app, "alice", 1001)

    await aim_replies_at_bobs_log(app)
    # The cancel ran (its reply went to tgqr.evt.bob in CLIENTS, where nothing stores it);
    # the log holds bob's events only, no reply.
    bob = await core_subjects(running, "bob")
    assert all("type" in event and "ok" not in event for event in bob), bob
    assert not (await running.event_log.load_tenant("bob")).quarantined

    auditor = await on_cluster.connect("auditor", 2)
    await mirrored(auditor, running)
    reader = JetStreamEventLog(auditor.jetstream(timeout=5), running.chain_key)
    report = await audit_verify(reader, running.chain_key)
    assert report.ok, report
    alice = [record.event for record in await reader.read_tenant("alice")]
    assert type(alice[-1]).__name__ == "Authorized"
    await auditor.close()
    await app.close()

    # The README's two command lines, credentials in the URL only.
    assert running.projector is not None
    last = (await js.stream_info(STREAM)).state.last_seq
    await running.projector.wait_for(last)
    app_url = on_cluster.url("app", 1)
    status = json.loads(await on_cluster.tgqr("status", "--json", "--nats", app_url))
    assert {item["tenant"]: item["state"] for item in status["items"]}["alice"] == "authorized"
    key = (on_cluster.data / "chain.key").read_text().strip()
    audit = await on_cluster.tgqr(
        "audit", "--verify", "--nats", on_cluster.url("auditor", 2), env={"TGQR_CHAIN_KEY": key}
    )
    last_line = audit.splitlines()[-1]
    assert last_line.startswith("verified: "), audit
    assert last_line.endswith(" 2 chains, no breaks"), audit
