"""``tgqr login`` and ``tgqr password`` when things happen elsewhere, in child processes: the
service stops mid-login, the login ends on the page or through ``tgqr password`` while the
2FA prompt waits, and a password is wrong. Each ends in time with one line that says what
happened, and a wrong password is a failure (exit 1) that names the tries left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest

from actors.service import NatsServer
from events import LoginStarted, encode_event, event_subject
from events.jetstream import ensure_stream
from tests.actors.service._cli import err, out, tgqr
from tests.actors.service.conftest import Driver

from ._children import ROOT, Prompted, Up, child_env

pytestmark = [pytest.mark.slow]

LIMIT_S = 10


def _finish(prompted: Prompted) -> tuple[int, str, str]:
    """Exit code, stdout and the rest of stderr of a command expected to end by itself."""
    code = prompted.proc.wait(timeout=LIMIT_S)
    assert prompted.proc.stdout is not None
    return code, prompted.proc.stdout.read(), prompted.stderr.read()


def test_login_says_so_when_the_service_stops(up: tuple[Up, Path]) -> None:
    """`tgqr up` stops (Ctrl-C, its embedded nats-server with it) while `tgqr login` follows
    an attempt: the login ends at once with one line on stderr, exit 1."""
    first, data = up
    login = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "actors.cli", "login", "alice", "--data", str(data)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(TGQR_LOG_LEVEL="WARNING"),
        cwd=ROOT,
    )
    try:
        assert login.stdout is not None
        first_line = login.stdout.readline()
        assert "login attempt 1" in first_line, first_line
        assert first.ctrl_c() == 0
        started = time.monotonic()
        _, stderr = login.communicate(timeout=LIMIT_S)
        assert time.monotonic() - started < LIMIT_S
    finally:
        if login.poll() is None:
            login.kill()
            login.communicate()
    assert login.returncode == 1
    assert stderr.strip().splitlines() == [
        "tgqr: the connection to NATS closed before the login of alice ended (did `tgqr up` stop?)"
    ]


async def _at_the_prompt(driver: Driver, tenant: str, nats_url: str) -> Prompted:
    """`tgqr login TENANT` on a terminal, scanned by a 2FA account, at its password prompt."""
    prompted = Prompted("login", tenant, "--nats", nats_url)
    try:
        await driver.wait_for(tenant, "QrIssued")
        reply: dict[str, Any] = await driver.scan(tenant, 4242, password="pw")
        assert reply["ok"], reply
        await anyio.to_thread.run_sync(prompted.wait_for_prompt, "2FA password: ")
    except BaseException:
        prompted.close()
        raise
    return prompted


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("verb", "body", "code", "outcome"),
    [
        ("password", {"password": "pw"}, 0, "authorized as user 4242 on DC"),
        ("cancel", {}, 1, "login cancelled"),
    ],
)
async def test_the_2fa_prompt_ends_when_the_login_ends_elsewhere(
    driver: Driver,
    nats_server: NatsServer,
    *,
    verb: str,
    body: dict[str, Any],
    code: int,
    outcome: str,
) -> None:
    """While `tgqr login` asks for the password, the page (or `tgqr password`, or a cancel)
    ends the login: the prompt closes, the terminal echoes again, one line says how it ended
    and that it ended elsewhere; no stale error follows."""
    prompted = await _at_the_prompt(driver, "carol", nats_server.url)
    try:
        reply = await driver.command("carol", verb, **body)
        assert reply["ok"], reply
        exit_code, stdout, stderr = await anyio.to_thread.run_sync(_finish, prompted)
        assert exit_code == code, (stdout, stderr)
        said = (stdout if code == 0 else stderr).strip().splitlines()[-1]
        assert said.startswith(outcome), said
        assert "ended elsewhere" in said
        assert "not taken" not in stderr
        assert "wrong_state" not in stderr
        assert prompted.echo_on()
    finally:
        prompted.close()


@pytest.mark.anyio
async def test_a_wrong_password_at_the_login_prompt_says_so_and_asks_again(
    driver: Driver, nats_server: NatsServer
) -> None:
    """A wrong password typed at `tgqr login`'s prompt: "wrong password, 4 tries left", the
    prompt again; the right one then logs in (exit 0)."""
    prompted = await _at_the_prompt(driver, "dave", nats_server.url)
    try:
        os.write(prompted.master, b"nope\n")
        await anyio.to_thread.run_sync(prompted.wait_for_prompt, "2FA password: ")
        os.write(prompted.master, b"pw\n")
        exit_code, stdout, stderr = await anyio.to_thread.run_sync(_finish, prompted)
        assert exit_code == 0, (stdout, stderr)
        lines = stdout.strip().splitlines()
        assert "wrong password, 4 tries left" in lines
        assert lines[-1].startswith("authorized as user 4242 on DC")
    finally:
        prompted.close()


async def _password(nats_server: NatsServer, tenant: str, password: str) -> tuple[int, str, str]:
    result = await tgqr(nats_server, "password", tenant, stdin=password.encode() + b"\n")
    return result.returncode, out(result), err(result)


async def _needs_password(driver: Driver, tenant: str) -> None:
    await driver.command(tenant, "start")
    await driver.wait_for(tenant, "QrIssued")
    await driver.scan(tenant, 4343, password="correct horse")
    await driver.wait_for(tenant, "PasswordRequired")


@pytest.mark.anyio
async def test_tgqr_password_tells_a_wrong_password_and_exits_1(
    driver: Driver, nats_server: NatsServer
) -> None:
    """`tgqr password` with a wrong password: one line naming the tries left, exit 1 (it
    printed the state and exited 0); the right one: the state, exit 0."""
    await _needs_password(driver, "erin")
    code, stdout, stderr = await _password(nats_server, "erin", "nope")
    assert (code, stdout) == (1, ""), stderr
    assert stderr.splitlines() == ["tgqr: erin: wrong password, 4 tries left (attempt 1)"]
    code, stdout, stderr = await _password(nats_server, "erin", "correct horse")
    assert (code, stderr) == (0, ""), stdout
    assert stdout.splitlines() == ["erin: authorized (attempt 1)"]


@pytest.mark.anyio
async def test_tgqr_password_tells_the_last_wrong_try_failed_the_login(
    driver: Driver, nats_server: NatsServer
) -> None:
    """The fifth wrong password fails the login: one line says so, exit 1."""
    await _needs_password(driver, "frank")
    for left in (4, 3, 2, 1):
        reply = await driver.command("frank", "password", password="nope")
        assert reply["state"] == "password_required", (left, reply)
    code, _, stderr = await _password(nats_server, "frank", "nope")
    assert code == 1
    assert stderr.splitlines() == [
        "tgqr: frank: login failed: wrong password, no tries left (attempt 1)"
    ]


@pytest.mark.anyio
async def test_login_gives_up_when_no_end_comes_past_the_deadline(
    nats_server: NatsServer,
) -> None:
    """On an external NATS the connection outlives a stopped service: a login whose attempt
    never ends (no Expired ever comes) gives up soon after its deadline, in one line."""
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        requests = await nc.subscribe("tgqr.cmd.zed.start")

        async def a_service_that_then_stops() -> None:
            msg = await requests.next_msg(timeout=30)
            now = datetime.now(UTC)
            started = LoginStarted(
                tenant="zed", attempt=1, at=now, id="e1", deadline=now + timedelta(seconds=1)
            )
            await js.publish(event_subject("zed"), encode_event(started))
            reply = {"ok": True, "tenant": "zed", "attempt": 1, "state": "pending"}
            await msg.respond(json.dumps(reply).encode())

        async with anyio.create_task_group() as tg:
            tg.start_soon(a_service_that_then_stops)
            result = await tgqr(nats_server, "login", "zed")
    finally:
        await nc.close()
    assert result.returncode == 1
    assert err(result).splitlines() == [
        "tgqr: no word from tgqr on zed since the login's deadline: is `tgqr up` running?"
    ]
