"""Backup and restore of a store with N authorized tenants (default 10,000): time and size.

Each tenant has a real chained log (LoginStarted, QrIssued, Scanned, Authorized) and a
Fernet-sealed session of a real StringSession's size in the sessions bucket. Measured: a full
backup into a directory, an incremental one after 1% of the tenants logged in again, and a
restore of the chain into a fresh nats-server (every check first: checksums, AEAD, sequences,
every MAC of every chain), then an audit of the restored log.

    python -m benchmarks.backup [--json] [--tenants N] [--sync always|2m]
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import nats
from cryptography.fernet import Fernet
from nats.aio.client import Client

from actors.backup import BackupKey, DirectoryTarget, create_backup, restore_backup
from actors.service import NatsServer, start_nats_server
from benchmarks._common import bench_args, report
from events import Authorized, ChainKey, Event, LoginStarted, QrIssued, Scanned, verify_log
from events.jetstream import JetStreamEventLog, ensure_stream
from events.jsstorage import ensure_bucket
from events.storage import StoragePolicy

KEY = ChainKey(b"benchmark-key-0123456789abcdefgh")
BACKUP_KEY = BackupKey(os.urandom(32))
_SESSION = "1" + "A" * 352  # a StringSession: version, DC, address, port, 256-byte auth key


async def _login(log: JetStreamEventLog, tenant: str, attempt: int) -> None:
    now = datetime.now(UTC)
    head = await log.head(tenant)
    events: list[Event] = [
        LoginStarted(tenant=tenant, attempt=attempt, at=now, deadline=now),
        QrIssued(tenant=tenant, attempt=attempt, at=now, url="tg://login?token=" + "x" * 43,
                 expires_at=now, dc_id=2),
        Scanned(tenant=tenant, attempt=attempt, at=now),
        Authorized(tenant=tenant, attempt=attempt, at=now, user_id=10_000 + attempt,
                   dc_id=2, session_fingerprint="f" * 16),
    ]  # fmt: skip
    for event in events:
        head = await log.append(tenant, [event], head)


async def _seed(nc: Client, tenants: list[str], attempt: int) -> None:
    js = nc.jetstream()
    log = JetStreamEventLog(js, KEY)
    kv = await ensure_bucket(
        js, "tgqr_sessions", limits=StoragePolicy().sessions, env_name="X", description="b"
    )
    fernet = Fernet(Fernet.generate_key())
    pending = iter(tenants)

    async def worker() -> None:
        for tenant in pending:
            await _login(log, tenant, attempt)
            await kv.put(tenant, fernet.encrypt(_SESSION.encode()))

    async with anyio.create_task_group() as tg:
        for _ in range(64):
            tg.start_soon(worker)


@contextmanager
def _server(sync: str) -> Iterator[NatsServer]:
    """A throwaway nats-server syncing to disk as ``sync`` says (the service's default:
    ``always``, an fsync before each ack)."""
    with tempfile.TemporaryDirectory(prefix="tgqr-bench-") as tmp:
        server = start_nats_server(Path(tmp) / "nats", sync=sync)
        try:
            yield server
        finally:
            server.stop()


async def _run(count: int, sync: str) -> dict[str, float | int | str]:
    tenants = [f"t{n:05d}" for n in range(count)]
    with _server(sync) as server, _server(sync) as fresh, tempfile.TemporaryDirectory() as tmp:
        nc = await nats.connect(server.url)
        js = nc.jetstream(timeout=30)
        await ensure_stream(js)
        started = time.perf_counter()
        await _seed(nc, tenants, 1)
        seeded_s = time.perf_counter() - started
        target = DirectoryTarget(Path(tmp))

        started = time.perf_counter()
        full = await create_backup(js, target, BACKUP_KEY)
        full_s = time.perf_counter() - started
        await _seed(nc, tenants[: max(1, count // 100)], 2)
        started = time.perf_counter()
        incremental = await create_backup(js, target, BACKUP_KEY)
        incremental_s = time.perf_counter() - started
        await nc.close()

        restored = await nats.connect(fresh.url)
        started = time.perf_counter()
        result = await restore_backup(restored, target, BACKUP_KEY, chain_key=KEY)
        restore_s = time.perf_counter() - started
        started = time.perf_counter()
        audit = await verify_log(JetStreamEventLog(restored.jetstream(timeout=30), KEY), KEY)
        audit_s = time.perf_counter() - started
        await restored.close()
        assert audit.ok
        assert audit.verified == result.messages
    return {
        "tenants": count,
        "nats_sync": sync,
        "events": result.messages,
        "sessions": result.entries.get("tgqr_sessions", 0),
        "seed_s": seeded_s,
        "full_backup_s": full_s,
        "full_backup_mib": full.data_bytes / 2**20,
        "incremental_backup_s": incremental_s,
        "incremental_messages": incremental.messages,
        "incremental_entries": incremental.entries,
        "incremental_backup_kib": incremental.data_bytes / 2**10,
        "restore_s": restore_s,
        "restored_events_per_s": result.messages / restore_s,
        "audit_after_restore_s": audit_s,
    }


def main() -> None:
    parser = bench_args(__doc__ or "")
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--sync", default="always", help="JetStream sync_interval (always, 2m)")
    args = parser.parse_args()
    figures = anyio.run(_run, args.tenants, args.sync)
    report("backup and restore", figures, as_json=args.json)


if __name__ == "__main__":
    main()
