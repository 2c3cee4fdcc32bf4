"""``tgqr link TENANT [--ttl S]``: a signed link to the tenant's login page (the ``link``
command; it writes no event)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._connection import EXIT_OK, connected, request

__all__ = ["cmd_link"]


async def cmd_link(args: argparse.Namespace) -> int:
    """Print the link on stdout (alone, for scripts) and its expiry on stderr."""
    body: dict[str, Any] = {} if args.ttl is None else {"ttl_s": args.ttl}
    async with connected(args) as nc:
        reply = await request(nc, f"tgqr.cmd.{args.tenant}.link", body)
    print(reply["url"])
    print(f"valid until {reply['expires_at']} for {args.tenant}", file=sys.stderr)
    return EXIT_OK
