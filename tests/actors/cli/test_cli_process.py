"""The ``tgqr`` command line as a new user meets it, in child processes: one clear line and a
non-zero exit for every mistake (no traceback), one ``tgqr up`` per data directory, Ctrl-C at
a prompt or on ``tgqr up``, and each command connecting as its role without being told.
"""

from __future__ import annotations

import json
import os
import pty
import queue
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import pytest

from actors.service import NatsServer
from tests.actors.service.conftest import Driver

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
    # No page (its port is fixed) and no Telegram pauses in these runs.
    return env | {"TGQR_HTTP": "off", "TGQR_THROTTLE_MS": "0-0"} | extra


def tgqr(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "actors.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(**env),
        cwd=ROOT,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (and that it is single, no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("tgqr: ")
    return lines[0]


def _lines(stream: IO[str]) -> tuple[queue.Queue[str | None], threading.Thread]:
    found: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line)
        found.put(None)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return found, thread


class Up:
    """``tgqr up`` with its embedded nats-server, in its own process group (a shell job)."""

    def __init__(self, data: Path) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "actors.cli", "up", "--data", str(data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(TGQR_LOG_LEVEL="WARNING"),
            cwd=ROOT,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout
        self.lines, self._pump = _lines(self.stdout)
        self.seen: list[str] = []

    def ready(self) -> None:
        while not (self.seen and self.seen[-1].startswith("tgqr up:")):
            line = self.lines.get(timeout=30)
            assert line is not None, "tgqr up exited early:\n" + "".join(self.seen)
            self.seen.append(line)

    def ctrl_c(self) -> int:
        """SIGINT to the whole process group, as a terminal's Ctrl-C; the exit code."""
        os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(timeout=10)
        while (line := self.lines.get(timeout=5)) is not None:
            self.seen.append(line)
        return code

    def close(self) -> None:
        # Ctrl-C first: tgqr stops its nats-server, which is in a process group of its own
        # and would outlive a SIGKILL of tgqr's group.
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._pump.join(10)  # it ends at the pipe's end
        self.stdout.close()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Up, Path]]:
    data = tmp_path / "data"
    first = Up(data)
    try:
        first.ready()
        yield first, data
    finally:
        first.close()


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


class Prompted:
    """A ``tgqr`` command with a terminal (a pty) as standard input."""

    def __init__(self, *args: str) -> None:
        self.master, self.slave = pty.openpty()
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "actors.cli", *args],
            stdin=self.slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=ROOT,
        )
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr

    def wait_for_prompt(self, prompt: str) -> None:
        """Until ``prompt`` is on stderr (it ends without a newline: read characters)."""
        seen = ""
        deadline = time.monotonic() + 30
        while prompt not in seen:
            assert time.monotonic() < deadline, seen
            char = self.stderr.read(1)
            assert char, f"exited before the prompt: {seen!r}"
            seen += char

    def interrupt(self) -> tuple[int, str, float]:
        """Ctrl-C: exit code, the rest of stderr, and how long the exit took."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=10)
        return code, self.stderr.read(), time.monotonic() - started

    def echo_on(self) -> bool:
        return bool(termios.tcgetattr(self.slave)[3] & termios.ECHO)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        os.close(self.master)
        os.close(self.slave)


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
