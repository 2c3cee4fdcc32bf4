"""``tgqr cluster`` (``make cluster``): three nats-servers and three instances on loopback.

For trying several instances on one machine, as README "Running more than one" describes:
a 3-node JetStream cluster with the roles of ``nats.conf`` (one credentials file per role under
``DATA/creds``, as the embedded server makes), ``sync_interval: always`` on every node, the
shared simulator (``tgqr sim serve``) and three ``tgqr up --replicas 3 --sim shared``, each
with its own data directory holding the same chain, vault and link keys, its own page and its
own operations port. Every child's output goes to ``DATA/logs/<name>.log``. Ctrl-C stops the
instances first (each hands its tenants over), then the simulator, then the nodes.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import nats.errors
import nats.js.errors

from ._connection import EXIT_OK, data_dir
from ._signals import until_stopped

__all__ = ["add_cluster_command"]

_NODES = 3
_FIXED = {"client": 4222, "route": 6222, "http": 8081, "metrics": 9465}
_KEYS = ("chain.key", "vault.key", "link.key")


@dataclass
class _Ports:
    client: list[int]
    route: list[int]
    http: list[int]
    metrics: list[int]

    @classmethod
    def choose(cls, *, free: bool) -> _Ports:
        if not free:
            return cls(*([base + n for n in range(_NODES)] for base in _FIXED.values()))
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(socket.socket()) for _ in range(4 * _NODES)]
            for sock in sockets:
                sock.bind(("127.0.0.1", 0))
            ports = [sock.getsockname()[1] for sock in sockets]
        return cls(*(ports[n : n + _NODES] for n in range(0, 4 * _NODES, _NODES)))


@dataclass
class _Children:
    """The processes started, in order, and their log files."""

    root: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.root / "logs" / f"{name}.log").open("ab")
        self.logs.append(log)
        process = subprocess.Popen(  # noqa: S603 - our own CLI and the wheel's nats-server
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        self.processes.append((name, process))

    def stop(self) -> None:
        """SIGTERM in reverse order of start (instances, simulator, nodes), 30 s each (an
        instance hands its tenants over first)."""
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for log in self.logs:
            log.close()


def _node_extra(n: int, ports: _Ports) -> str:
    routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in ports.route)
    return (
        f"server_name: tgqr-node{n + 1}\n"
        f"cluster {{ name: tgqr-local, listen: 127.0.0.1:{ports.route[n]}, routes: [{routes}] }}"
    )


def _prepare(root: Path) -> None:
    """The roles' credentials and the keys every instance shares, made once under ``root``."""
    from actors.gateway.page import load_link_key
    from actors.keyfiles import private_dir
    from actors.service import ensure_credentials, load_chain_key
    from actors.vault import load_key_ring

    private_dir(root)
    ensure_credentials(root)
    load_chain_key(root, create=True)
    load_key_ring(root, create=True)
    load_link_key(root, create=True)
    for name in ("sim", *(f"i{n + 1}" for n in range(_NODES))):
        home = root / name
        private_dir(home)
        private_dir(home / "creds")
        for role in ("service", "page"):  # tgqr up runs its page as role page
            shutil.copy2(root / "creds" / f"{role}.json", home / "creds" / f"{role}.json")
        for key in _KEYS:
            shutil.copy2(root / key, home / key)
    (root / "logs").mkdir(exist_ok=True)


async def _answered(urls: str, root: Path, *, service: bool) -> None:
    """Until the cluster's JetStream answers the service role (its meta leader is elected),
    or (``service``) until an instance answers ``$SRV.PING.tgqr``: each try waits its own
    second, at most 60 s in all."""
    from actors.service import connect_nats, resolve_auth

    auth = resolve_auth("service", data_dir=root, urls=urls.split(","), env={})
    nc = await connect_nats(urls.split(","), auth=auth, reconnect=True)
    try:
        with anyio.fail_after(60):
            while True:
                try:
                    if service:
                        await nc.request("$SRV.PING.tgqr", b"", timeout=1)
                    else:
                        await nc.jetstream(timeout=1).account_info()
                except (
                    nats.errors.TimeoutError,
                    nats.errors.NoRespondersError,
                    nats.js.errors.ServiceUnavailableError,
                ):
                    await anyio.sleep(0.2)  # no responder yet: a pace, not a wait for it
                    continue
                return
    finally:
        await nc.close()


async def cmd_cluster(args: argparse.Namespace) -> int:
    from actors.service import (
        child_environment,
        derive_config,
        ensure_credentials,
        find_nats_server,
    )

    root = data_dir(args) / "cluster"
    ports = _Ports.choose(free=args.free_ports)
    _prepare(root)
    users = ensure_credentials(root)
    urls = ",".join(f"nats://127.0.0.1:{port}" for port in ports.client)
    children = _Children(root)
    try:
        for n in range(_NODES):
            conf = root / f"node{n + 1}.conf"
            text = derive_config(root / f"node{n + 1}", port=ports.client[n], users=users,
                                 extra=_node_extra(n, ports))  # fmt: skip
            conf.write_text(text)
            conf.chmod(0o600)
            children.start(f"node{n + 1}", [find_nats_server(), "-c", str(conf)], {})
        await _answered(urls, root, service=False)
        cli = [sys.executable, "-m", "actors.cli"]
        env = child_environment({"TGQR_LOG_LEVEL": "INFO", "TGQR_THROTTLE_MS": args.throttle})
        children.start("sim", [*cli, "sim", "serve", "--nats", urls, "--data", str(root / "sim")],
                       env)  # fmt: skip
        for n in range(args.instances):
            name = f"i{n + 1}"
            children.start(
                name,
                [*cli, "up", "--nats", urls, "--replicas", "3", "--sim", "shared",
                 "--data", str(root / name), "--http", f"127.0.0.1:{ports.http[n]}",
                 "--metrics", f"127.0.0.1:{ports.metrics[n]}"],
                env | {"TGQR_INSTANCE": name},
            )  # fmt: skip
            if n == 0:  # the first creates the streams and buckets the others then find
                await _answered(urls, root, service=True)
        _print_summary(root, urls, ports, args.instances)
        return await _serve(children)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(children.stop)
        print("stopped", flush=True)


def _print_summary(root: Path, urls: str, ports: _Ports, instances: int) -> None:
    pages = ", ".join(f"http://127.0.0.1:{port}" for port in ports.http[:instances])
    print(
        f"tgqr cluster: nodes {urls}; instances i1-i{instances} (pages {pages}); "
        f"logs in {root / 'logs'} (Ctrl-C stops)\n"
        f"  try: tgqr login alice --nats {urls} --data {root}\n"
        f"       tgqr status --nats {urls} --data {root}",
        flush=True,
    )


async def _serve(children: _Children) -> int:
    """Until SIGINT/SIGTERM. A child that ends meanwhile (one you killed to watch the others
    take over) is reported, and the rest go on."""
    async with anyio.create_task_group() as tg:

        async def watch(name: str, process: subprocess.Popen[bytes]) -> None:
            code = await anyio.to_thread.run_sync(process.wait, abandon_on_cancel=True)
            print(f"tgqr cluster: {name} exited ({code}); see its log", flush=True)

        for name, process in children.processes:
            tg.start_soon(watch, name, process)
        await until_stopped()
        tg.cancel_scope.cancel()
    return EXIT_OK


def add_cluster_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``cluster`` (argparse's private _SubParsersAction has no public type)."""
    cluster = sub.add_parser(
        "cluster",
        parents=[common],
        help="3 nats-servers and 3 instances on loopback, for trying (DATA/cluster)",
    )
    cluster.add_argument(
        "--free-ports",
        action="store_true",
        help="any free ports (default: clients 4222-4224, routes 6222-6224, pages 8081-8083)",
    )
    cluster.add_argument(
        "--instances", type=int, choices=(1, 2, 3), default=3, help="how many tgqr up (default 3)"
    )
    cluster.add_argument("--throttle", default="200-500", help=argparse.SUPPRESS)
    cluster.set_defaults(run=cmd_cluster)
