"""`tgqr session lease` / `release` as an operator runs them, against a running service."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from actors.service import NatsServer

from ._apps import get_me, log_in, run_cli
from .conftest import Driver

pytestmark = pytest.mark.anyio


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode()


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


async def test_an_operator_leases_to_a_file_and_releases(
    driver: Driver, nats_server: NatsServer, tmp_path: Path
) -> None:
    """--out writes the session 0600 and only a summary goes to stdout; the session opens as
    alice; a second lease is refused with its holder; release (the recorded lease) ends it."""
    await log_in(driver, "alice", 1001)
    data = ["--data", str(tmp_path / "cli")]
    target = tmp_path / "alice.session"
    leased = await run_cli(
        nats_server, "session", "lease", "alice", "--holder", "ops-1", "--out", str(target),
        *data,
    )  # fmt: skip
    assert leased.returncode == 0, err(leased)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    session = target.read_text().strip()
    assert session not in out(leased)
    assert "leased to ops-1" in out(leased)
    assert await get_me(session) == 1001

    again = await run_cli(
        nats_server, "session", "lease", "alice", "--holder", "x", "--print", *data
    )
    assert again.returncode == 1
    assert "leased: the session is leased to ops-1" in err(again)
    assert out(again) == ""

    released = await run_cli(nats_server, "session", "release", "alice", *data)
    assert released.returncode == 0, err(released)
    events = await driver.events("alice")
    assert (events[-1]["type"], events[-1]["reason"]) == ("SessionReleased", "released")


async def test_print_puts_only_the_session_on_stdout_and_revoked_logs_out(
    driver: Driver, nats_server: NatsServer, tmp_path: Path
) -> None:
    """--print: stdout is the session alone (the summary on stderr); release --revoked with
    the lease id logs the tenant out; without --out or --print nothing is leased."""
    await log_in(driver, "bob", 1002)
    data = ["--data", str(tmp_path / "cli")]
    nowhere = await run_cli(nats_server, "session", "lease", "bob", "--holder", "ops", *data)
    assert nowhere.returncode == 1
    assert "--out FILE" in err(nowhere)
    printed = await run_cli(
        nats_server, "session", "lease", "bob", "--holder", "ops", "--print", "--suite", "x25519",
        *data,
    )  # fmt: skip
    assert printed.returncode == 0, err(printed)
    assert len(out(printed).splitlines()) == 1
    assert await get_me(out(printed).strip()) == 1002
    lease_id = (await driver.wait_for("bob", "SessionLeased"))["lease_id"]
    revoked = await run_cli(
        nats_server, "session", "release", "bob", "--lease-id", lease_id, "--revoked", *data
    )
    assert revoked.returncode == 0, err(revoked)
    assert (await driver.events("bob"))[-1]["type"] == "LoggedOut"


async def test_only_the_holders_record_releases_early(
    driver: Driver, nats_server: NatsServer, tmp_path: Path
) -> None:
    """The lease record (0600) holds the lease's proof, never the session; another operator
    (another data dir, no record) or a lease id read from the log cannot release: one line,
    exit 1, the lease still runs; the holder's record releases it."""
    await log_in(driver, "carol", 1003)
    mine = ["--data", str(tmp_path / "mine")]
    leased = await run_cli(
        nats_server, "session", "lease", "carol", "--holder", "ops", "--print", "--suite",
        "x25519", *mine,
    )  # fmt: skip
    assert leased.returncode == 0, err(leased)
    record_file = tmp_path / "mine" / "leases" / "carol.json"
    assert stat.S_IMODE(record_file.stat().st_mode) == 0o600
    record = json.loads(record_file.read_text())
    assert len(record["proof"]) == 44
    assert out(leased).strip() not in record_file.read_text()
    lease_id = (await driver.wait_for("carol", "SessionLeased"))["lease_id"]
    theirs = ["--data", str(tmp_path / "theirs")]
    for args in ([], ["--lease-id", lease_id], ["--lease-id", lease_id, "--revoked"]):
        refused = await run_cli(nats_server, "session", "release", "carol", *args, *theirs)
        assert refused.returncode == 1
        assert len(err(refused).strip().splitlines()) == 1
        assert "only the holder that leased it can release it early" in err(refused)
    wrong = await run_cli(nats_server, "session", "release", "carol", "--lease-id", "ab12", *mine)
    assert wrong.returncode == 1
    assert (await driver.events("carol"))[-1]["type"] == "SessionLeased"
    released = await run_cli(nats_server, "session", "release", "carol", *mine)
    assert released.returncode == 0, err(released)
    assert (await driver.events("carol"))[-1]["reason"] == "released"
