"""The operator's commands: ``status``, ``metrics``, ``audit``, ``projections rebuild``,
``vault rotate`` and the simulator's ``sim scan``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from actors.service import load_chain_key
from events import ChainKey
from events.audit import audit_verify, format_record, replay
from events.jetstream import JetStreamEventLog

from ._connection import EXIT_FAIL, EXIT_OK, connected, data_dir, request

__all__ = [
    "cmd_audit",
    "cmd_metrics",
    "cmd_rebuild",
    "cmd_sim_scan",
    "cmd_status",
    "cmd_vault_rotate",
]


async def cmd_status(args: argparse.Namespace) -> int:
    """``status [TENANT]``: the status projection, as a table or ``--json``."""
    from projections import render_status

    async with connected(args) as nc:
        body = {"tenant": args.tenant} if args.tenant else {}
        reply = await request(nc, "tgqr.query.status", body)
        print(json.dumps(reply, indent=2) if args.json else render_status(reply["items"]))
        return EXIT_OK


async def cmd_metrics(args: argparse.Namespace) -> int:
    """``metrics``: the metrics projection over ``--window`` seconds."""
    from projections import render_metrics

    async with connected(args) as nc:
        body: dict[str, Any] = {}
        if args.window is not None:
            body["window_s"] = args.window
        reply = await request(nc, "tgqr.query.metrics", body)
        print(json.dumps(reply, indent=2) if args.json else render_metrics(reply))
        return EXIT_OK


async def cmd_audit(args: argparse.Namespace) -> int:
    """``audit``: replay the event log from JetStream; ``--verify`` checks the hash chains."""
    async with connected(args) as nc:
        js = nc.jetstream()
        key = (
            load_chain_key(data_dir(args))
            if args.verify
            else ChainKey(b"audit-without-verify-key-000000!")
        )
        log = JetStreamEventLog(js, key)
        types = args.type or None
        async for item in replay(
            log, tenant=args.tenant, since=args.since, until=args.until, types=types
        ):
            print(format_record(item, json=args.json))
        if not args.verify:
            return EXIT_OK
        report = await audit_verify(log, key, tenant=args.tenant)
        if report.ok:
            print(f"verified: {report.checked} events, {report.tenants} chains, no breaks")
            return EXIT_OK
        print(f"chain broken at {report.first_break}", file=sys.stderr)
        return EXIT_FAIL


async def cmd_rebuild(args: argparse.Namespace) -> int:
    """``projections rebuild``: the service rebuilds its projections from sequence 1."""
    async with connected(args) as nc:
        reply = await request(nc, "tgqr.query.rebuild", {}, wait_s=600)
        print(f"rebuilt: {reply.get('events')} events in {reply.get('seconds')}s")
        return EXIT_OK


async def cmd_vault_rotate(args: argparse.Namespace) -> int:
    """``vault rotate``: re-encrypt every stored session with the newest key."""
    from actors.vault import KvSessionVault, load_key_ring

    async with connected(args) as nc:
        vault = await KvSessionVault.open(nc.jetstream(), load_key_ring(data_dir(args)))
        print(f"re-encrypted {await vault.rotate()} sessions with the newest key")
        return EXIT_OK


async def cmd_sim_scan(args: argparse.Namespace) -> int:
    """``sim scan``: the simulator's phone scans a tenant's (or a URL's) QR code."""
    async with connected(args) as nc:
        body: dict[str, Any] = {"user_id": args.user}
        for name in ("tenant", "url", "password"):
            if getattr(args, name):
                body[name] = getattr(args, name)
        if args.dc is not None:
            body["dc_id"] = args.dc
        await request(nc, "tgqr.sim.scan", body)
        print(f"user {args.user} scanned {args.tenant or args.url}")
        return EXIT_OK
