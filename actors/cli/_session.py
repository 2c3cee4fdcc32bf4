"""``tgqr session lease`` and ``tgqr session release``: an operator's handoff of a session.

``lease`` makes a fresh HPKE key pair, asks ``tgqr.session.<tenant>.lease`` as the ``app`` role,
opens the sealed session and writes it to ``--out FILE`` (mode 0600) and/or, with ``--print``,
to stdout (nothing else goes to stdout then, so ``$(tgqr session lease ... --print)`` is the
session). The CLI does not renew: the lease ends at ``expires_at`` unless released earlier.
Its id and its proof (the secret tgqr sealed to this key pair, which ``release`` must show) are
kept in ``<data>/leases/<tenant>.json`` (0600, never the session), so ``release`` proves it is
the holder without ``--lease-id``; without that file nobody can release the lease early.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from actors.hpke import KeyPair, SealedOpenError, lease_info, proof_info

from ._connection import EXIT_OK, CliError, connected, data_dir, request

__all__ = ["add_session_commands", "cmd_session_lease", "cmd_session_release"]


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)


def _lease_file(args: argparse.Namespace) -> Path:
    return data_dir(args) / "leases" / f"{args.tenant}.json"


async def cmd_session_lease(args: argparse.Namespace) -> int:
    """Lease ``args.tenant``'s session to ``--holder``; write it where asked."""
    if args.out is None and not args.print:
        raise CliError("give --out FILE (written 0600) or --print: where should the session go?")
    keys = KeyPair.generate(args.suite)
    body = {
        "holder": args.holder,
        "public_key": base64.b64encode(keys.public_key).decode(),
        "suite": args.suite,
        "ttl_s": args.ttl,
    }
    async with connected(args) as nc:
        reply = await request(nc, f"tgqr.session.{args.tenant}.lease", body)
    lease_id, fence = reply["lease_id"], int(reply["fence"])
    try:
        session = keys.open(
            base64.b64decode(reply["sealed"], validate=True),
            lease_info(args.tenant, lease_id, fence),
        ).decode()
        proof = keys.open(
            base64.b64decode(reply["proof_sealed"], validate=True),
            proof_info(args.tenant, lease_id, fence),
        )
    except (SealedOpenError, ValueError, KeyError):
        raise CliError("the sealed session or proof in the reply does not open") from None
    record: dict[str, Any] = {
        key: reply[key] for key in ("tenant", "lease_id", "fence", "expires_at", "user_id")
    }
    record["holder"] = args.holder
    record["proof"] = base64.b64encode(proof).decode()
    lease_file = _lease_file(args)
    lease_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(lease_file, json.dumps(record) + "\n")
    if args.out is not None:
        _write_private(Path(args.out), session + "\n")
    where = f"session in {args.out} (0600)" if args.out else "session on stdout"
    summary = (
        f"{args.tenant}: leased to {args.holder} (user {reply['user_id']}, DC {reply['dc_id']}),"
        f" lease {reply['lease_id']} fence {reply['fence']} until {reply['expires_at']}; "
        f"{where}; not renewed: `tgqr session release {args.tenant}` ends it sooner"
    )
    if args.print:
        print(session, flush=True)
        print(summary, file=sys.stderr)
    else:
        print(summary)
    return EXIT_OK


async def cmd_session_release(args: argparse.Namespace) -> int:
    """Release ``args.tenant``'s lease: the one ``lease`` recorded (``--lease-id``: only if it
    is that one), proven with the proof recorded beside it."""
    lease_file = _lease_file(args)
    try:
        record = json.loads(lease_file.read_text())
        lease_id, proof = str(record["lease_id"]), str(record["proof"])
    except (OSError, ValueError, KeyError, TypeError):
        raise CliError(
            f"no lease of {args.tenant} with its proof in {lease_file}: only the holder that "
            "leased it can release it early (else it ends at its expiry)"
        ) from None
    if args.lease_id is not None and args.lease_id != lease_id:
        raise CliError(
            f"lease {args.lease_id} is not the one recorded in {lease_file} ({lease_id}): "
            "only the holder that leased it can release it early"
        )
    body = {"lease_id": lease_id, "revoked": bool(args.revoked), "proof": proof}
    async with connected(args) as nc:
        await request(nc, f"tgqr.session.{args.tenant}.release", body)
    with contextlib.suppress(OSError):
        lease_file.unlink()
    then = "; logged out (revoked)" if args.revoked else ""
    print(f"{args.tenant}: lease {lease_id} released{then}")
    return EXIT_OK


def add_session_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    tenant: Any,
) -> None:
    """Register ``session lease`` and ``session release`` (``tenant``: the id's arg type)."""
    session = sub.add_parser("session", help="hand a tenant's session to an operator or app")
    ssub = session.add_subparsers(dest="action", required=True, metavar="ACTION")
    lease = ssub.add_parser("lease", parents=[common], help="lease the session (one holder)")
    lease.add_argument("tenant", type=tenant)
    lease.add_argument("--holder", required=True, help="who holds it (1..64 of A-Za-z0-9_.-)")
    lease.add_argument("--ttl", type=int, default=300, help="seconds (10..3600, default 300)")
    lease.add_argument("--out", metavar="FILE", help="write the session to FILE (mode 0600)")
    lease.add_argument("--print", action="store_true", help="print the session on stdout")
    lease.add_argument("--suite", choices=("mlkem768-x25519", "x25519"), default="mlkem768-x25519")
    lease.set_defaults(run=cmd_session_lease)
    release = ssub.add_parser("release", parents=[common], help="end the lease")
    release.add_argument("tenant", type=tenant)
    release.add_argument(
        "--lease-id", help="check that the recorded lease is this one (its proof is recorded)"
    )
    release.add_argument(
        "--revoked", action="store_true", help="the session is dead or leaked: log it out too"
    )
    release.set_defaults(run=cmd_session_release)
