"""``tgqr`` in child processes, as an operator runs it: one-shot commands, ``tgqr up`` in its
own process group, and commands with a terminal (a pty) as standard input."""

from __future__ import annotations

import os
import pty
import queue
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import IO

__all__ = ["ROOT", "Prompted", "Up", "child_env", "one_line", "tgqr"]

ROOT = Path(__file__).resolve().parents[3]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
    # No page and no /metrics (their ports are fixed) and no Telegram pauses in these runs.
    return env | {"TGQR_HTTP": "off", "TGQR_METRICS": "off", "TGQR_THROTTLE_MS": "0-0"} | extra


def tgqr(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "actors.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(**env),
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
            env=child_env(TGQR_LOG_LEVEL="WARNING"),
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
            env=child_env(),
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
