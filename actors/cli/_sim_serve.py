"""``tgqr sim serve``: the simulator as one process that every instance in simulator mode
shares (``tgqr up --sim shared``).

It connects as role ``service`` (``_connection._ROLE_OF``), runs the simulated DCs on loopback
with their state kept in ``DATA/sim``, and answers ``tgqr.sim.>`` (``scan``, ``devices``,
``terminate``, ``info``). A scan by tenant reads that tenant's QR from the log, so it needs the
instances' chain key (``TGQR_CHAIN_KEY`` or ``DATA/chain.key``).
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

from ._connection import EXIT_OK, connected, data_dir
from ._signals import until_stopped

__all__ = ["add_sim_serve_command", "cmd_sim_serve"]


async def cmd_sim_serve(args: argparse.Namespace) -> int:
    """``sim serve``: serve the shared simulator until SIGINT/SIGTERM."""
    from actors.sim import serve_shared_simulator
    from events.jetstream import JetStreamEventLog

    from ._admin import chain_key

    key, _ = chain_key(args)
    store = data_dir(args) / "sim"
    async with connected(args, reconnect=True) as nc, anyio.create_task_group() as tg:
        event_log = JetStreamEventLog(nc.jetstream(timeout=10), key)
        sim = await tg.start(
            lambda task_status: serve_shared_simulator(
                nc, event_log, store, task_status=task_status
            )
        )
        dcs = ", ".join(f"DC {dc} {host}:{port}" for dc, host, port in sim.dcs())
        print(f"tgqr sim serve: {dcs}, state in {store} (Ctrl-C stops)", flush=True)
        await until_stopped()
        tg.cancel_scope.cancel()
    print("stopped", flush=True)
    return EXIT_OK


def add_sim_serve_command(
    ssub: Any,  # argparse's private _SubParsersAction
    common: argparse.ArgumentParser,
) -> None:
    """Add ``serve`` to the ``sim`` subcommands."""
    serve = ssub.add_parser(
        "serve",
        parents=[common],
        help="run the simulator for every `tgqr up --sim shared` on this NATS",
    )
    serve.set_defaults(run=cmd_sim_serve)
