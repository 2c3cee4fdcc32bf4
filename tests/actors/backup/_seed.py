"""A store to back up: a real log (chained, MAC'd events), sealed-looking sessions and leases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from actors.service import start_nats_server
from events import ChainKey, Head, LoginStarted, Scanned, StoragePolicy
from events.jetstream import JetStreamEventLog, ensure_stream
from events.jsstorage import ensure_bucket

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHAIN_KEY = ChainKey(b"c" * 32)


async def append(js: JetStreamContext, tenant: str, count: int, *, ensure: bool = True) -> Head:
    """``count`` more events of ``tenant`` after its head (``ensure``: create or update the
    stream first)."""
    if ensure:
        await ensure_stream(js)
    log = JetStreamEventLog(js, CHAIN_KEY)
    head = await log.head(tenant)
    for n in range(count):
        event = (
            LoginStarted(tenant=tenant, attempt=n + 1, at=T0, deadline=T0)
            if n % 2 == 0
            else Scanned(tenant=tenant, attempt=n, at=T0)
        )
        head = await log.append(tenant, [event], head)
    return head


async def put_session(js: JetStreamContext, tenant: str, value: bytes) -> None:
    kv = await ensure_bucket(
        js, "tgqr_sessions", limits=StoragePolicy().sessions, env_name="X", description="s"
    )
    await kv.put(tenant, value)


async def delete_session(js: JetStreamContext, tenant: str) -> None:
    kv = await js.key_value("tgqr_sessions")
    await kv.delete(tenant)


async def sessions(js: JetStreamContext) -> dict[str, bytes]:
    try:
        kv = await js.key_value("tgqr_sessions")
    except Exception:
        return {}
    out: dict[str, bytes] = {}
    try:
        keys = await kv.keys()
    except Exception:
        return {}
    for key in keys:
        entry = await kv.get(key)
        if entry.value:
            out[key] = entry.value
    return out


async def raw_log(js: JetStreamContext) -> list[tuple[int, str, bytes, dict[str, str]]]:
    """Every message of the log as stored: sequence, subject, bytes, headers."""
    info = await js.stream_info("TGQR_EVENTS")
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg("TGQR_EVENTS", seq)
        out.append((int(msg.seq or 0), msg.subject or "", msg.data or b"", dict(msg.headers or {})))
    return out


@asynccontextmanager
async def other_store(tmp_path: Path, name: str = "other") -> AsyncIterator[Client]:
    """A second, empty nats-server and a client of it."""
    server = await anyio.to_thread.run_sync(lambda: start_nats_server(tmp_path / name))
    try:
        nc = await nats.connect(server.url, connect_timeout=5, max_reconnect_attempts=0)
        try:
            yield nc
        finally:
            await nc.close()
    finally:
        await anyio.to_thread.run_sync(server.stop)
