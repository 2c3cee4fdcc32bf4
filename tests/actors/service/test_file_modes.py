"""The data directory is its user's only: after ``tgqr up`` with the embedded nats-server has
run a login, every directory in it is 0700 and no file is open to group or other: the
nats-server store, the simulator's state, the DuckDB file and its WAL, the keys, the
credentials, the lock and ``nats.url``; a directory left looser by an older version is
tightened at start."""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import pytest

from actors.service import NatsAuth, connect_nats, read_credentials

from .test_process import Up, request, until

pytestmark = pytest.mark.anyio


def loose(data: Path) -> list[str]:
    """Every path under ``data`` (itself included) that group or other may use."""
    found = []
    for path in [data, *data.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if stat.S_IMODE(mode) & 0o077 or (stat.S_ISDIR(mode) and stat.S_IMODE(mode) != 0o700):
            found.append(f"{path.relative_to(data.parent)} {stat.filemode(mode)}")
    return found


async def test_the_data_dir_is_private_after_a_run(tmp_path: Path) -> None:
    """A data dir made world-readable beforehand, then a run with a login: nothing in it is
    open to others while the service runs (WAL and nats.url present) nor after it stopped."""
    data = tmp_path / "data"
    (data / "leases").mkdir(parents=True)
    data.chmod(0o755)
    (data / "leases").chmod(0o755)
    (data / "leases" / "old.json").write_text("{}")
    (data / "leases" / "old.json").chmod(0o644)
    (data / "nats.url").write_text("stale\n")
    (data / "nats.url").chmod(0o666)
    up = Up(None, data)
    try:
        await up.ready()
        url = (data / "nats.url").read_text().strip()
        # As the service's own user: it may read the log and follow its subjects.
        service = read_credentials(data, "service")
        assert service is not None
        nc = await connect_nats(
            [url], auth=NatsAuth("service", credentials=service), reconnect=False
        )
        try:
            assert (await request(nc, "tgqr.cmd.alice.start", {}))["ok"]
            await until(nc, "alice", "QrIssued")
            assert (await request(nc, "tgqr.sim.scan", {"tenant": "alice", "user_id": 7}))["ok"]
            await until(nc, "alice", "Authorized")
            health = await request(nc, "tgqr.query.health", {})
            assert health["ok"], health
        finally:
            await nc.close()
        made = {p.relative_to(data).as_posix() for p in data.rglob("*")}
        assert {"nats", "sim", "creds", "tgqr.duckdb", "tgqr.lock", "nats.url"} <= made
        assert any(name.startswith("nats/jetstream") for name in made)
        assert loose(data) == []
        up.proc.send_signal(signal.SIGTERM)
        assert await up.wait(10) == 0
        assert loose(data) == []
    finally:
        up.close()
