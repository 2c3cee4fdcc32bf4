"""The NATS query endpoint over a real nats-server and JetStream log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from events import ChainKey, StoragePolicy, StoredMessage
from events.jetstream import JetStreamEventLog, ensure_stream
from projections import ProjectionStore, Projector, serve_queries
from tests.projections._histories import T0, Script, tenant_events

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"k" * 32)


class GatedLog(JetStreamEventLog):
    """Holds a rebuild's full replay (``read_chunks`` without follow) until ``gate`` is set."""

    def __init__(self, js: JetStreamContext) -> None:
        super().__init__(js, KEY)
        self.entered = anyio.Event()
        self.gate = anyio.Event()

    async def read_chunks(
        self, start: int = 1, *, follow: bool = False
    ) -> AsyncIterator[list[StoredMessage]]:
        if not follow:
            self.entered.set()
            await self.gate.wait()
        async for chunk in super().read_chunks(start, follow=follow):
            yield chunk


async def ask(nc: Client, name: str, body: bytes | dict[str, Any] = b"") -> dict[str, Any]:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    msg = await nc.request(f"tgqr.query.{name}", data, timeout=5)
    reply: dict[str, Any] = msgspec.json.decode(msg.data)
    return reply


@pytest.fixture
async def log(js: JetStreamContext) -> GatedLog:
    await ensure_stream(js)
    log = GatedLog(js)
    for tenant, script in [("acme", Script("authorized")), ("beta", Script("live", qrs=2))]:
        await log.append(tenant, tenant_events(tenant, [script]), await log.head(tenant))
    return log


async def test_status_metrics_and_health(nc: Client, log: GatedLog, tmp_path: Path) -> None:
    """Each query answers from the projection once it has caught up."""
    store = ProjectionStore.open(tmp_path / "q.duckdb")
    projector = Projector(log, store, clock=lambda: T0.replace(hour=13), max_delay=0.01)
    try:
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                await tg.start(projector.run)
                await tg.start(serve_queries, nc, projector)
                await projector.wait_for(await log.last_seq())

                status = await ask(nc, "status")
                assert status["ok"] is True
                states = {item["tenant"]: item["state"] for item in status["items"]}
                assert states == {"acme": "authorized", "beta": "pending"}
                one = await ask(nc, "status", {"tenant": "beta"})
                [beta] = one["items"]
                assert beta["qr_url"].startswith("tg://login?token=")
                assert beta["updated_at"].startswith("2025-01-01T12:00")

                metrics = await ask(nc, "metrics", {"window_s": 7200})
                assert metrics["window_s"] == 7200
                assert metrics["global"]["started"] == 2
                assert metrics["global"]["success_rate"] == 1.0
                assert set(metrics["tenants"]) == {"acme", "beta"}
                assert (await ask(nc, "metrics"))["window_s"] == 3600

                health = await ask(nc, "health")
                storage = health.pop("storage")
                assert storage["stream_msgs"] == await log.last_seq()
                assert storage["limit_bytes"] == StoragePolicy().log.max_bytes
                assert storage["stream_bytes"] > 0
                assert storage["fill"] < 0.01
                assert storage["warning"] is None
                assert [store["name"] for store in storage["stores"]] == ["TGQR_EVENTS"]
                assert health == {
                    "ok": True,
                    "lag_events": 0,
                    "lag_s": 0.0,
                    "last_seq": await log.last_seq(),
                    "checkpoint": await log.last_seq(),
                    "duckdb": "ok",
                    "nats": "connected",
                    "telegram": {"dcs_down": []},
                }
                tg.cancel_scope.cancel()
    finally:
        store.close()


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("status", b"{nope", "invalid_request"),
        ("status", b"[1]", "invalid_request"),
        ("status", {"tenant": 5}, "invalid_request"),
        ("status", {"tenant": "no spaces!"}, "invalid_tenant"),
        ("metrics", {"window_s": "1h"}, "invalid_request"),
        ("metrics", {"window_s": True}, "invalid_request"),
        ("metrics", {"window_s": 0}, "invalid_request"),
        ("metrics", {"tenant": "x" * 65}, "invalid_tenant"),
        ("health", b"42", "invalid_request"),
        ("teleport", b"{}", "invalid_request"),
    ],
)
async def test_bad_requests_get_structured_errors(  # noqa: PLR0917 - pytest fixtures
    nc: Client, log: GatedLog, tmp_path: Path, name: str, body: Any, code: str
) -> None:
    """Malformed or invalid requests are answered with an error code, never dropped."""
    store = ProjectionStore.open(tmp_path / "q.duckdb")
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(serve_queries, nc, Projector(log, store))
                reply = await ask(nc, name, body)
                assert reply["ok"] is False
                assert reply["error"]["code"] == code
                assert reply["error"]["message"]
                tg.cancel_scope.cancel()
    finally:
        store.close()


async def test_closed_store_answers_unavailable(nc: Client, log: GatedLog, tmp_path: Path) -> None:
    """A DuckDB failure becomes ``unavailable``."""
    store = ProjectionStore.open(tmp_path / "q.duckdb")
    store.close()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(serve_queries, nc, Projector(log, store))
            reply = await ask(nc, "status")
            assert reply["error"]["code"] == "unavailable"
            tg.cancel_scope.cancel()


async def test_queries_are_answered_during_a_rebuild(
    nc: Client, log: GatedLog, tmp_path: Path
) -> None:
    """While a rebuild replays, status queries answer from the old tables; then it swaps."""
    store = ProjectionStore.open(tmp_path / "q.duckdb")
    projector = Projector(log, store, max_delay=0.01)
    rebuilt: dict[str, Any] = {}
    done = anyio.Event()

    async def rebuild() -> None:
        rebuilt.update(await ask(nc, "rebuild"))
        done.set()

    try:
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                await tg.start(projector.run)
                await tg.start(serve_queries, nc, projector)
                last = await log.last_seq()
                await projector.wait_for(last)
                tg.start_soon(rebuild)
                await log.entered.wait()
                assert projector.statistics().rebuilding
                status = await ask(nc, "status")
                assert len(status["items"]) == 2
                assert (await ask(nc, "health"))["ok"] is True
                log.gate.set()
                await done.wait()
                tg.cancel_scope.cancel()
        assert rebuilt["ok"] is True
        assert rebuilt["events"] == last
        assert rebuilt["checkpoint"] == last
        assert not projector.statistics().rebuilding
    finally:
        store.close()
