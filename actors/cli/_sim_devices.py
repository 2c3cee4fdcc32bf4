"""``tgqr sim devices`` and ``tgqr sim terminate``: the simulator's phone, Settings → Devices.

Operator tools of simulator mode: they connect as role ``service`` (``_connection._ROLE_OF``),
which may reach ``tgqr.sim.>``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._args import int_in
from ._connection import EXIT_OK, connected, request

__all__ = ["add_sim_device_commands", "cmd_sim_devices", "cmd_sim_terminate"]


def _line(device: dict[str, Any]) -> str:
    name = f"{device.get('device_model', '')}, {device.get('system_version', '')}"
    return (
        f"{device.get('id', '?')}  {name}  app {device.get('app_version', '')}  "
        f"lang {device.get('lang_code', '')}  from {device.get('peer', '?')}"
    )


async def cmd_sim_devices(args: argparse.Namespace) -> int:
    """``sim devices``: the sessions of a simulated user, as its phone lists them."""
    async with connected(args) as nc:
        reply = await request(nc, "tgqr.sim.devices", {"user_id": args.user})
    devices: list[dict[str, Any]] = list(reply.get("devices") or [])
    if args.json:
        print(json.dumps(devices))
    elif not devices:
        print(f"user {args.user} has no sessions")
    else:
        for device in devices:
            print(_line(device))
    return EXIT_OK


async def cmd_sim_terminate(args: argparse.Namespace) -> int:
    """``sim terminate``: the phone ends one session (the next call with it is refused)."""
    async with connected(args) as nc:
        await request(nc, "tgqr.sim.terminate", {"user_id": args.user, "device": args.device})
    print(f"user {args.user} ended session {args.device}")
    return EXIT_OK


def add_sim_device_commands(
    ssub: Any,  # argparse's private _SubParsersAction
    common: argparse.ArgumentParser,
) -> None:
    """Add ``devices`` and ``terminate`` to the ``sim`` subcommands."""
    devices = ssub.add_parser("devices", parents=[common], help="the phone's Devices list")
    devices.add_argument("--user", type=int_in(1), required=True)
    devices.add_argument("--json", action="store_true", help="a JSON list")
    devices.set_defaults(run=cmd_sim_devices)
    terminate = ssub.add_parser("terminate", parents=[common], help="end one session")
    terminate.add_argument("--user", type=int_in(1), required=True)
    terminate.add_argument("--device", required=True, help="an id from `tgqr sim devices`")
    terminate.set_defaults(run=cmd_sim_terminate)
