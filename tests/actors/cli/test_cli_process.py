"""The ``tgqr`` command line as a new user meets it, in child processes: one clear line and a
non-zero exit for every mistake (no traceback), one ``tgqr up`` per data directory, Ctrl-C at
a prompt or on ``tgqr up``, and each command connecting as its role without being told.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.service import NatsServer
from tests.actors.service.conftest import Driver

from ._children import Prompted, Up, one_line, tgqr

pytestmark = [pytest.mark.slow]


def test_a_second_up_on_the_same_data_refuses_and_touches_nothing(
    up: tuple[Up, Path],
) -> None:
    """One line naming the first one's pid; its nats.url stays; the first keeps serving and
    stops on Ctrl-C with exit 0 (nats-server, in its own group, stopped by tgqr)."""
    first, data = up
    url = (data / "nats.url").read_text()
    started = time.monotonic()
    line = one_line(tgqr("up", "--data", str(data)))
    assert time.monotonic() - started < 10
    assert f"another tgqr up is using {data}/ (pid {first.proc.pid})" in line
    assert (data / "nats.url").read_text() == url
    status = tgqr("status", "--data", str(data))
    assert status.returncode == 0, status.stderr
    assert first.ctrl_c() == 0, "".join(first.seen)
    assert "stopped" in "".join(first.seen)
    assert not (data / "nats.url").exists()


def test_each_command_connects_as_its_role(up: tuple[Up, Path]) -> None:
    """With auth on, `status`, `cancel` (app), `audit --verify` (auditor) and `projections
    rebuild` (service) work with no credentials given; another role's user, or a wrong
    password, is one line naming the role and the user, and never shows a password."""
    _, data = up
    assert tgqr("cancel", "alice", "--data", str(data)).returncode == 1  # wrong_state: it ran
    for args in (["status"], ["audit", "--verify"], ["projections", "rebuild"]):
        result = tgqr(*args, "--data", str(data))
        assert result.returncode == 0, (args, result.stderr)
    auditor = json.loads((data / "creds" / "auditor.json").read_text())["password"]
    url = (data / "nats.url").read_text().strip().replace("//", f"//auditor:{auditor}@")
    line = one_line(tgqr("status", "--nats", url))
    assert line == (
        "tgqr: NATS refused role app (user auditor from the URL): it may not publish to "
        "tgqr.query.status (see README, 'Roles and credentials')"
    )
    creds = data / "creds" / "app.json"
    real = json.loads(creds.read_text())
    creds.write_text(json.dumps({"user": "app", "password": "not-the-password"}))
    line = one_line(tgqr("status", "--data", str(data)))
    assert f"refused the credentials as role app (user app from {creds})" in line
    assert "not-the-password" not in line
    assert real["password"] not in line


def test_unreachable_or_malformed_nats_url_is_one_line(tmp_path: Path) -> None:
    """`up` and client commands with nothing listening, a malformed URL, a stale nats.url."""
    line = one_line(tgqr("up", "--nats", "nats://127.0.0.1:1", "--data", str(tmp_path / "d")))
    assert line == "tgqr: cannot reach NATS at nats://127.0.0.1:1: connection refused"
    line = one_line(tgqr("status", "--nats", "nats://app:s3cret@127.0.0.1:1"))
    assert "nats://app:***@127.0.0.1:1" in line
    assert "s3cret" not in line
    assert "cannot reach NATS" in one_line(tgqr("status", "--nats", "bogus::url::"))
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "nats.url").write_text("nats://127.0.0.1:1\n")
    assert "is stale" in one_line(tgqr("status", "--data", str(stale)))


def test_a_bad_log_level_is_one_line_naming_the_setting() -> None:
    line = one_line(tgqr("status", TGQR_LOG_LEVEL="x"))
    assert "TGQR_LOG_LEVEL" in line
    assert "'x'" in line


def _assert_clean_interrupt(prompted: Prompted) -> None:
    assert not prompted.echo_on()  # the prompt is reading without echo
    code, rest, took = prompted.interrupt()
    assert code == 130
    assert rest.strip().splitlines() == ["tgqr: interrupted"], rest
    assert took < 3
    assert prompted.echo_on()  # the terminal is given back as it was


def test_ctrl_c_at_the_password_prompt_exits_at_once(nats_server: NatsServer) -> None:
    """`tgqr password`: the first Ctrl-C ends it, one line, the terminal echoes again."""
    prompted = Prompted("password", "alice", "--nats", nats_server.url)
    try:
        prompted.wait_for_prompt("2FA password for alice: ")
        _assert_clean_interrupt(prompted)
    finally:
        prompted.close()


@pytest.mark.anyio
async def test_ctrl_c_at_the_login_2fa_prompt_exits_at_once(
    driver: Driver, nats_server: NatsServer
) -> None:
    """`tgqr login` asking for the 2FA password mid-login: Ctrl-C ends it at once."""
    prompted = Prompted("login", "carol", "--nats", nats_server.url)
    try:
        await driver.wait_for("carol", "QrIssued")
        reply: dict[str, Any] = await driver.scan("carol", 4242, password="pw")
        assert reply["ok"], reply
        await anyio.to_thread.run_sync(prompted.wait_for_prompt, "2FA password: ")
        _assert_clean_interrupt(prompted)
    finally:
        prompted.close()


def test_nats_without_a_service_is_one_line(nats_server: NatsServer) -> None:
    """NATS answers but no tgqr serves there: one line naming the subject (it was nats-py's
    raw `NoRespondersError`)."""
    line = one_line(tgqr("status", "--nats", nats_server.url))
    assert line == "tgqr: no tgqr service answers on tgqr.query.status: is `tgqr up` running?"
