"""``tgqr page``: the end user's page as a process of its own, a NATS client of role ``page``.

``tgqr up`` starts one (on the socket it bound, with ``--listen-fd``); more can run anywhere
that reaches NATS, given the chain and link keys (``TGQR_CHAIN_KEY``, ``TGQR_LINK_KEY`` or the
key files of ``--data``): links are signed, so any replica serves any tenant. As a Telegram
Mini App it checks the launch data with ``TGQR_BOT_TOKEN`` (or ``TGQR_BOT_TOKEN_FILE``; or,
without the token, Telegram's public key and ``TGQR_BOT_ID``), at most
``TGQR_INITDATA_MAX_AGE_S`` old (default 3600).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from collections.abc import Callable
from typing import Any

import anyio

from actors.gateway.page import ServeLimits

from ._connection import EXIT_OK, CliError, data_dir

__all__ = ["add_page_command"]

_DEFAULTS = ServeLimits()


def _read_keys(fd: int | None) -> dict[str, str]:
    """The keys ``tgqr up`` wrote into the pipe ``fd`` (closed after reading)."""
    if fd is None:
        return {}
    with os.fdopen(fd, "rb") as pipe:
        raw = pipe.read(64 * 1024)
    try:
        keys = json.loads(raw or b"{}")
    except ValueError:
        raise CliError("--keys-fd: not the keys tgqr up writes") from None
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise CliError("--keys-fd: not the keys tgqr up writes")
    return {str(k): v for k, v in keys.items()}


def _urls(args: argparse.Namespace) -> tuple[str, ...]:
    from actors.service import NATS_URL_FILE

    if args.nats:
        return tuple(u.strip() for u in str(args.nats).split(",") if u.strip())
    url_file = data_dir(args) / NATS_URL_FILE
    try:
        return tuple(url_file.read_text().split())
    except OSError:
        raise CliError(
            f"no running tgqr found ({url_file} is missing): start `tgqr up` or pass --nats URL"
        ) from None


def _limits(args: argparse.Namespace) -> ServeLimits:
    for name in ("header_timeout", "body_timeout"):
        if getattr(args, name) <= 0:
            raise CliError(f"--{name.replace('_', '-')} must be more than 0 seconds")
    for name in ("max_connections", "max_per_client", "max_streams", "max_streams_per_tenant"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1")
    return ServeLimits(
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        max_connections=args.max_connections,
        max_per_client=args.max_per_client,
        max_streams=args.max_streams,
        max_streams_per_tenant=args.max_streams_per_tenant,
    )


async def cmd_page(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; with ``--ready-fd``, write ``ready`` there once serving."""
    from actors.service import PageOptions, run_page

    keys = _read_keys(args.keys_fd)
    if args.listen_fd is None and not args.http:
        args.http = os.environ.get("TGQR_HTTP") or "127.0.0.1:8080"
    options = PageOptions(
        data_dir=data_dir(args),
        nats_urls=_urls(args),
        http=args.http,
        listen_fd=args.listen_fd,
        keys=keys,
        creds=args.creds,
        nkey=args.nkey,
        public_url=args.public_url or os.environ.get("TGQR_PUBLIC_URL") or None,
        limits=_limits(args),
    )
    async with anyio.create_task_group() as tg:
        url = await tg.start(lambda task_status: run_page(options, task_status=task_status))
        if args.ready_fd is not None:
            os.write(args.ready_fd, b"ready\n")
            os.close(args.ready_fd)
        else:
            print(f"tgqr page: serving on {url} (Ctrl-C stops)", flush=True)
        if args.parent_fd is not None:
            tg.start_soon(_until_parent_ends, args.parent_fd, tg.cancel_scope)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        tg.cancel_scope.cancel()
    return EXIT_OK


async def _until_parent_ends(fd: int, scope: anyio.CancelScope) -> None:
    """Stop the page once the process that started it is gone (EOF on its lifeline pipe)."""
    os.set_blocking(fd, False)
    try:
        while True:
            await anyio.wait_readable(fd)
            if not os.read(fd, 64):
                break
    finally:
        os.close(fd)
    scope.cancel()


def add_page_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``tgqr page`` to the subcommands ``sub``."""
    page = sub.add_parser(
        "page", parents=[common], help="serve the end user's page (its own process and role)"
    )
    page.add_argument(
        "--http", metavar="HOST:PORT", help="listen here (default: $TGQR_HTTP or 127.0.0.1:8080)"
    )
    page.add_argument("--public-url", help="where users reach it (default: $TGQR_PUBLIC_URL)")
    number: Callable[[str], float] = float
    page.add_argument(
        "--header-timeout",
        type=number,
        default=_DEFAULTS.header_timeout_s,
        metavar="S",
        help="close a connection whose request line and headers take longer (default %(default)s)",
    )
    page.add_argument(
        "--body-timeout",
        type=number,
        default=_DEFAULTS.body_timeout_s,
        metavar="S",
        help="close a connection whose request body takes longer (default %(default)s)",
    )
    for flag, default, text in (
        ("--max-connections", _DEFAULTS.max_connections, "open connections"),
        ("--max-per-client", _DEFAULTS.max_per_client, "open connections per client address"),
        ("--max-streams", _DEFAULTS.max_streams, "live-update streams"),
        ("--max-streams-per-tenant", _DEFAULTS.max_streams_per_tenant, "streams per tenant"),
    ):
        page.add_argument(
            flag, type=int, default=default, metavar="N", help=f"{text} (default %(default)s)"
        )
    # How `tgqr up` hands over the bound socket, the keys and readiness (inherited fds).
    for flag in ("--listen-fd", "--keys-fd", "--ready-fd", "--parent-fd"):
        page.add_argument(flag, type=int, help=argparse.SUPPRESS)
    page.set_defaults(run=cmd_page)
