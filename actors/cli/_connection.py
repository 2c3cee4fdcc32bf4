"""What every client command shares: exit codes, the user-facing error, the NATS connection
and request/reply with the service's ``{"ok": ...}`` contract."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client

__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "CliError", "connected", "data_dir", "request"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def data_dir(args: argparse.Namespace) -> Path:
    """``--data``, else ``$TGQR_DATA``, else ``var``."""
    return Path(args.data or os.environ.get("TGQR_DATA", "var"))


def _nats_url(args: argparse.Namespace) -> str:
    if args.nats:
        return str(args.nats)
    url_file = data_dir(args) / "nats.url"
    try:
        return url_file.read_text().strip()
    except OSError:
        raise CliError(
            f"no running tgqr found ({url_file} is missing): start `tgqr up` or pass --nats URL"
        ) from None


async def _connect(args: argparse.Namespace) -> Client:
    url = _nats_url(args)
    try:
        return await nats.connect(
            servers=url.split(","),
            connect_timeout=3,
            max_reconnect_attempts=1,
            allow_reconnect=False,
        )
    except (OSError, nats.errors.Error) as exc:
        raise CliError(f"cannot reach NATS at {url}: {type(exc).__name__}") from None


@asynccontextmanager
async def connected(args: argparse.Namespace) -> AsyncIterator[Client]:
    """A NATS connection to the service (``--nats``, else the URL ``tgqr up`` wrote), closed
    when the block exits. Blocks while connecting (at most 3 s).

    Raises:
        CliError: no URL to connect to, or NATS does not answer there.
    """
    nc = await _connect(args)
    try:
        yield nc
    finally:
        await nc.close()


async def request(
    nc: Client, subject: str, body: dict[str, Any], wait_s: float = 30
) -> dict[str, Any]:
    """The service's reply to ``body`` on ``subject``; blocks for at most ``wait_s``.

    Raises:
        CliError: nobody answers, no answer in time, or the reply is ``{"ok": false, ...}``.
    """
    try:
        msg = await nc.request(subject, json.dumps(body).encode(), timeout=wait_s)
    except nats.errors.NoRespondersError:
        raise CliError(f"no tgqr service answers on {subject}: is `tgqr up` running?") from None
    except nats.errors.TimeoutError:
        raise CliError(f"no answer on {subject} within {wait_s:.0f}s") from None
    reply: dict[str, Any] = json.loads(msg.data)
    if not reply.get("ok"):
        error = reply.get("error") or {}
        extra = f" (retry in {error['retry_after_s']}s)" if "retry_after_s" in error else ""
        raise CliError(f"{error.get('code', 'error')}: {error.get('message', '')}{extra}")
    return reply
