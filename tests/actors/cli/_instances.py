"""``tgqr up`` instances and ``tgqr sim serve`` as child processes on a 3-node cluster.

Every child writes its output to a pipe that a thread reads away (a full pipe would stall
it); the thread also signals the line that says the child is ready, so a test waits on that
line, never on a timer. Each instance gets its own data directory holding the same chain and
vault keys (copied from the first), as README "Running more than one" says.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from actors.service import load_chain_key
from actors.vault import load_key_ring

__all__ = ["Child", "Fleet", "shared_keys"]

ROOT = Path(__file__).resolve().parents[3]


def shared_keys(keys: Path, data: Path) -> Path:
    """``data`` with the chain and vault keys of ``keys`` (made there on first use)."""
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    load_chain_key(keys, create=True)
    load_key_ring(keys, create=True)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in ("chain.key", "vault.key"):
        shutil.copy2(keys / name, data / name)
    return data


@dataclass
class Child:
    """One child process of the CLI; ``ready`` is set once it printed ``ready_prefix``."""

    args: list[str]
    env: dict[str, str]
    ready_prefix: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    lines: list[str] = field(default_factory=list, repr=False)
    _ready: threading.Event = field(default_factory=threading.Event, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self._ready = threading.Event()
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "actors.cli", *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=ROOT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True, name="tgqr-child")
        self._reader.start()

    def _read(self) -> None:
        process = self.process
        assert process is not None and process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if line.startswith(self.ready_prefix):
                self._ready.set()
        self._ready.set()  # exited: wake the waiter (which then sees no process)

    async def ready(self, within_s: float = 30) -> None:
        with anyio.fail_after(within_s):
            await anyio.to_thread.run_sync(self._ready.wait, abandon_on_cancel=True)
        assert self.process is not None and self.process.poll() is None, "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL (nothing runs after it: no release of partitions, no leave)."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, as an operator stops it (SIGKILL after 15 s)."""
        self._end(signal.SIGTERM)

    def _end(self, signum: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signum)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._reader is not None:
            self._reader.join(10)
        if process.stdout is not None:
            process.stdout.close()


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TGQR_", "OTEL_"))}
    return env | {
        "TGQR_HTTP": "off",
        "TGQR_METRICS": "off",
        "TGQR_THROTTLE_MS": "0-0",
        "TGQR_LOG_LEVEL": "INFO",
        **extra,
    }


@dataclass
class Fleet:
    """A shared simulator and ``count`` instances, all as role ``service`` on ``urls`` (the
    first carries ``service:PASSWORD@``, as the README shows)."""

    urls: str
    root: Path
    count: int = 3
    replicas: int = 3
    sim: Child | None = None
    instances: list[Child] = field(default_factory=list)

    def __post_init__(self) -> None:
        keys = self.root / "keys"
        sim_data = shared_keys(keys, self.root / "sim")
        self.sim = Child(
            ["sim", "serve", "--nats", self.urls, "--data", str(sim_data)],
            _env({}),
            "tgqr sim serve:",
        )
        for n in range(1, self.count + 1):
            data = shared_keys(keys, self.root / f"i{n}")
            args = ["up", "--nats", self.urls, "--replicas", str(self.replicas)]
            self.instances.append(
                Child(
                    [*args, "--sim", "shared", "--data", str(data)],
                    _env({"TGQR_INSTANCE": f"i{n}"}),
                    "tgqr up:",
                )
            )

    async def start(self) -> None:
        assert self.sim is not None
        self.sim.start()
        await self.sim.ready()
        first, *others = self.instances
        first.start()  # creates the streams and buckets (R3) the others then find
        await first.ready()
        for child in others:
            child.start()
        for child in others:
            await child.ready()

    def close(self) -> None:
        """Kill every child; print their warnings and errors (pytest shows them on failure)."""
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        for child in [*self.instances, self.sim]:
            if child is not None:
                child.kill()
                (logs / f"{Path(child.args[-1]).name}.log").write_text("".join(child.lines))
                notable = [
                    line
                    for line in child.lines
                    if " WARNING " in line or " ERROR " in line or "tgqr.ownership" in line
                ]
                print(f"--- {' '.join(child.args[:2])} {child.args[-1]}:", *notable[-40:], sep="\n")
