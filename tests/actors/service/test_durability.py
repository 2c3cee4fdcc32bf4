"""The embedded nats-server syncs before it acknowledges, and keeps what it acknowledged.

``sync_interval: always`` is what makes an acknowledged write survive a power loss or an OS
crash; a SIGKILL of the server process alone leaves its writes in the OS page cache, so the
kill test below proves that nothing acknowledged is lost across a crash and restart of the
server, and the monitoring test proves the setting the running server really uses.
"""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest

from actors.service import ConfigError, ServiceConfig, start_nats_server
from actors.service._natsserver import derive_config
from events import ChainKey, Head, Scanned
from events.jetstream import JetStreamEventLog, ensure_stream
from events.jskv import RetryingKv
from events.jsstorage import ensure_bucket
from events.storage import StoragePolicy

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"durability-test-key-0123456789ab")
AT = datetime(2026, 1, 1, tzinfo=UTC)
_MONITOR = re.compile(r"Starting http monitor on ([0-9.]+):(\d+)")


def _jetstream_config(log_path: Path) -> dict[str, Any]:
    """The running server's JetStream settings, from its monitoring endpoint /varz."""
    match = _MONITOR.search(log_path.read_text())
    assert match, "the server did not start its monitor"
    url = f"http://{match.group(1)}:{match.group(2)}/varz"
    with urllib.request.urlopen(url, timeout=5) as response:
        varz: dict[str, Any] = json.load(response)
    config: dict[str, Any] = varz["jetstream"]["config"]
    return config


@pytest.mark.parametrize(
    ("sync", "always", "interval_ns"),
    [("always", True, 120_000_000_000), ("2m", None, 120_000_000_000), ("30s", None, 30 * 10**9)],
)
def test_the_server_runs_with_the_sync_it_was_given(
    tmp_path: Path, sync: str, always: bool | None, interval_ns: int
) -> None:
    """By default the embedded server fsyncs before each ack (/varz: sync_always); a
    duration makes it sync in the background that often."""
    extra = "http: 127.0.0.1:-1"
    kwargs = {} if sync == "always" else {"sync": sync}
    server = start_nats_server(tmp_path / "nats", extra=extra, **kwargs)  # type: ignore[arg-type]
    try:
        config = _jetstream_config(server.log_path)
    finally:
        server.stop()
    assert config.get("sync_always") is always
    assert config["sync_interval"] == interval_ns


def test_the_sync_setting_is_read_and_checked() -> None:
    """TGQR_NATS_SYNC defaults to always, takes a duration, and refuses anything else; the
    derived config carries it in the jetstream block."""
    assert ServiceConfig.from_env({}).nats_sync == "always"
    assert ServiceConfig.from_env({"TGQR_NATS_SYNC": "2m"}).nats_sync == "2m"
    for bad in ("never", "2", "0", ""):
        with pytest.raises(ConfigError, match="TGQR_NATS_SYNC"):
            ServiceConfig.from_env({"TGQR_NATS_SYNC": bad})
    block = re.search(
        r"(?s)^jetstream \{.*?^\}", derive_config(Path("/s"), sync="1m30s"), re.MULTILINE
    )
    assert block is not None
    assert 'sync_interval: "1m30s"' in block.group(0)


@pytest.mark.slow
async def test_acknowledged_writes_survive_a_sigkill_of_the_server(tmp_path: Path) -> None:
    """Appends and a KV write acknowledged just before the server is SIGKILLed are all
    there after it restarts on the same store."""
    store = tmp_path / "nats"
    server = start_nats_server(store)
    acked: dict[str, int] = {}
    nc = await nats.connect(server.url, max_reconnect_attempts=0)
    js = nc.jetstream(timeout=5)
    await ensure_stream(js)
    log = JetStreamEventLog(js, KEY)
    bucket = await ensure_bucket(
        js, "tgqr_sessions", limits=StoragePolicy().sessions, env_name="-", description="test"
    )
    kv = RetryingKv(bucket, "tgqr_sessions")
    heads = {tenant: Head() for tenant in ("alice", "bob", "carol")}

    async def write(tenant: str) -> None:
        for _ in range(50):
            event = Scanned(tenant=tenant, attempt=1, at=AT)
            heads[tenant] = await log.append(tenant, [event], heads[tenant])
        acked[tenant] = heads[tenant].seq
        await kv.put(tenant, str(heads[tenant].seq).encode())

    async with anyio.create_task_group() as tg:
        for tenant in heads:
            tg.start_soon(write, tenant)
    server.kill()  # right after the last acknowledgement: no shutdown, nothing flushed
    await nc.close()

    server = start_nats_server(store)
    try:
        nc = await nats.connect(server.url, max_reconnect_attempts=0)
        js = nc.jetstream(timeout=5)
        log = JetStreamEventLog(js, KEY)
        kv = RetryingKv(await js.key_value("tgqr_sessions"), "tgqr_sessions")
        assert await log.last_seq() == 150
        for tenant, seq in acked.items():
            stored = await log.load_tenant(tenant)
            assert (len(stored.records), stored.head) == (50, heads[tenant])
            assert (await kv.get(tenant)).value == str(seq).encode()
        await nc.close()
    finally:
        server.stop()
