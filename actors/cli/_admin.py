"""The operator's commands: ``status``, ``metrics``, ``audit``, ``projections rebuild``,
``vault rotate`` and the simulator's ``sim scan``.

Keys are loaded, never created, here: only ``tgqr up`` (and the demo) makes a chain or vault
key, because a new key matches no existing log or session. A command that needs one and finds
none says where it looked and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import anyio
from nats.aio.client import Client
from nats.js import JetStreamContext

from actors.service import (
    CHAIN_KEY_ENV,
    CHAIN_KEY_FILE,
    ChainKeyMissingError,
    load_chain_key,
)
from events import ChainKey, VerifyReport
from events.audit import (
    audit_verify,
    format_record,
    key_mismatch_text,
    marks_of,
    released_marks,
    replay,
)
from events.jetstream import JetStreamEventLog
from events.records import Record, Undecodable

from ._connection import EXIT_FAIL, EXIT_OK, CliError, connected, data_dir, request
from ._login import _read_password
from ._progress import Progress

__all__ = [
    "chain_key",
    "cmd_audit",
    "cmd_metrics",
    "cmd_rebuild",
    "cmd_sim_scan",
    "cmd_status",
    "cmd_vault_rotate",
    "where_keys_are",
]

# A plain replay checks no MAC; the reader still wants a key object, so it gets one that
# matches nothing (and is never written anywhere).
_NO_KEY: Final = ChainKey(b"audit-without-verify-key-000000!")


def where_keys_are(env: str) -> str:
    """The hint that ends every "no key" or "wrong key" message."""
    return f"pass --data DIR (the data directory of `tgqr up`) or set {env}"


def chain_key(args: argparse.Namespace) -> tuple[ChainKey, str]:
    """The chain key (never created) and where it came from, for messages.

    Raises:
        CliError: there is none (the message says where it looked).
        ConfigError: the variable or the file does not hold a valid key.
    """
    directory = data_dir(args)
    try:
        key = load_chain_key(directory, create=False)
    except ChainKeyMissingError as exc:
        raise CliError(f"{exc}: {where_keys_are(CHAIN_KEY_ENV)}") from None
    source = CHAIN_KEY_ENV if os.environ.get(CHAIN_KEY_ENV) else str(directory / CHAIN_KEY_FILE)
    return key, source


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


class _WatchedLog(JetStreamEventLog):
    """The log, reporting each item :meth:`read_all` yields to a :class:`Progress`."""

    def __init__(self, js: JetStreamContext, key: ChainKey, progress: Progress) -> None:
        super().__init__(js, key)
        self._progress = progress

    async def read_all(
        self, start: int = 1, *, follow: bool = False
    ) -> AsyncIterator[Record | Undecodable]:
        async for item in super().read_all(start, follow=follow):
            self._progress.update(item.seq)
            yield item


async def cmd_audit(args: argparse.Namespace) -> int:
    """``audit``: replay the event log from JetStream; ``--verify`` checks the hash chains.

    Messages outside their chain stay in the replay, marked (with ``--verify``: why, and the
    ``QuarantineLifted`` that released them; without: what the log's lifts name). ``--verify``
    exits 0 when every break is a released bad message (see :func:`_verdict`).
    """
    key, source = chain_key(args) if args.verify else (None, "")
    async with connected(args) as nc:
        log = JetStreamEventLog(nc.jetstream(), key or _NO_KEY)
        report: VerifyReport | None = None
        if key is None:
            marks = await released_marks(log, tenant=args.tenant)
        else:
            # Verify first: a wrong key is one line, not a replay in which nothing verifies.
            # On a terminal (and without --json) it shows how far it got.
            progress = Progress("verifying", await log.last_seq(), enabled=not args.json)
            watched = _WatchedLog(nc.jetstream(), key, progress) if progress.enabled else log
            try:
                report = await audit_verify(watched, key, tenant=args.tenant)
            finally:
                progress.close()
            if report.key_mismatch:
                mismatch = key_mismatch_text(report, source)
                raise CliError(f"{mismatch}: {where_keys_are(CHAIN_KEY_ENV)}")
            marks = marks_of(report)
        types = args.type or None
        async for item in replay(
            log, tenant=args.tenant, since=args.since, until=args.until, types=types
        ):
            print(format_record(item, json=args.json, mark=marks.get(item)))
        return EXIT_OK if report is None else _verdict(report, as_json=args.json)


def _verdict(report: VerifyReport, *, as_json: bool) -> int:
    """List every break, then the verdict: exit 0 when there is none, or when each is a bad
    message released by a verified ``QuarantineLifted`` (an operator's decision sealed in the
    chain itself, after which every reader sees the chain whole); else 1. With ``as_json`` the
    list and the counts are one JSON object on stdout (the one-line error stays on stderr)."""
    if as_json:
        print(_verdict_json(report))
    else:
        for broken in report.breaks:
            print(f"break: {broken}")
    if report.ok:
        if as_json:
            return EXIT_OK
        released = len(report.released)
        tail = (
            f"{released} bad message(s), each released by QuarantineLifted"
            if released
            else "no breaks"
        )
        print(f"verified: {report.verified} events, {report.tenants} chains, {tail}")
        return EXIT_OK
    more = len(report.unreleased) - 1
    print(
        f"chain broken at {report.first_break}" + (f" (and {more} more)" if more else ""),
        file=sys.stderr,
    )
    return EXIT_FAIL


def _verdict_json(report: VerifyReport) -> str:
    return json.dumps(
        {
            "verify": {
                "ok": report.ok,
                "verified": report.verified,
                "checked": report.checked,
                "chains": report.tenants,
                "key_id": report.key_id,
                "breaks": [
                    {
                        "seq": b.seq,
                        "tenant": b.tenant or None,
                        "reason": b.reason,
                        "released_by": b.released_by,
                    }
                    for b in report.breaks
                ],
            }
        }
    )


_POLL_S: Final = 0.5
"""How often ``projections rebuild`` asks the service's health how far its rebuild got."""


async def _watch_rebuild(nc: Client, progress: Progress) -> None:
    """Draw the rebuild as ``tgqr.query.health`` reports it (``rebuild.seq`` of ``target``)
    until cancelled. A health reply that fails or says nothing of a rebuild (another instance
    answered it) only skips one drawing."""
    while True:
        try:
            health = await request(nc, "tgqr.query.health", {}, wait_s=_POLL_S * 10)
        except CliError:
            health = {}
        figures = health.get("rebuild")
        if isinstance(figures, dict):
            progress.total = int(figures.get("target", 0))
            progress.update(int(figures.get("seq", 0)))
        await anyio.sleep(_POLL_S)


async def cmd_rebuild(args: argparse.Namespace) -> int:
    """``projections rebuild``: the service rebuilds its projections from sequence 1.

    On a terminal (and without ``--json``) it polls the service's health meanwhile and draws
    how far the rebuild got: the reply stays one message, and a lost poll costs one drawing.
    """
    async with connected(args) as nc:
        progress = Progress("rebuilding", 0, enabled=not args.json)
        replies: list[dict[str, Any]] = []
        failed: list[Exception] = []
        try:
            # Failures are raised after the group (which would wrap them in an exception group).
            async with anyio.create_task_group() as tg:
                if progress.enabled:
                    tg.start_soon(_watch_rebuild, nc, progress)
                try:
                    replies.append(await request(nc, "tgqr.query.rebuild", {}, wait_s=600))
                except Exception as exc:  # raised below, unwrapped
                    failed.append(exc)
                tg.cancel_scope.cancel()
            if failed:
                raise failed[0]
            reply = replies[0]
            progress.total = int(reply.get("checkpoint") or 0)
            progress.update(progress.total)
        finally:
            progress.close()
        if args.json:
            print(json.dumps(reply))
        else:
            print(f"rebuilt: {reply.get('events')} events in {reply.get('seconds')}s")
        return EXIT_OK


async def cmd_vault_rotate(args: argparse.Namespace) -> int:
    """``vault rotate``: re-encrypt every stored session with the newest key (on a terminal,
    without ``--json``: with count, rate and ETA)."""
    from actors.vault import KEYS_ENV, KvSessionVault, VaultKeyError, load_key_ring

    try:
        keys = load_key_ring(data_dir(args), create=False)
    except VaultKeyError as exc:
        raise CliError(f"{exc}: {where_keys_are(KEYS_ENV)}") from None
    async with connected(args) as nc:
        vault = await KvSessionVault.open(nc.jetstream(), keys)
        progress = Progress("re-encrypting", 0, unit="entries", enabled=not args.json)

        def advance(done: int, total: int) -> None:
            progress.total = total
            progress.update(done)

        try:
            count = await vault.rotate(on_progress=advance)
        except VaultKeyError as exc:
            raise CliError(str(exc)) from None
        finally:
            progress.close()
        if args.json:
            print(json.dumps({"rotated": count}))
        else:
            print(f"re-encrypted {count} sessions with the newest key")
        return EXIT_OK


def _scan_password(args: argparse.Namespace) -> str | None:
    """The 2FA password of the scanning account: ``--password-file FILE`` (its first line), or
    ``--password`` alone (asked without echo, or one line of stdin, as ``tgqr password``).
    Never from the command line, where any local user sees it.

    Raises:
        CliError: the file or stdin holds no password.
    """
    if args.password_file is not None:
        try:
            text = Path(args.password_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read --password-file {args.password_file}: {exc}") from None
        password = text.splitlines()[0] if text.strip() else ""
        if not password:
            raise CliError(f"--password-file {args.password_file} holds no password")
        return password
    if args.password:
        return _read_password(f"2FA password of user {args.user}: ")
    return None


async def cmd_sim_scan(args: argparse.Namespace) -> int:
    """``sim scan``: the simulator's phone scans a tenant's (or a URL's) QR code."""
    password = _scan_password(args)
    async with connected(args) as nc:
        body: dict[str, Any] = {"user_id": args.user}
        for name in ("tenant", "url"):
            if getattr(args, name):
                body[name] = getattr(args, name)
        if password is not None:
            body["password"] = password
        if args.dc is not None:
            body["dc_id"] = args.dc
        await request(nc, "tgqr.sim.scan", body)
        print(f"user {args.user} scanned {args.tenant or args.url}")
        return EXIT_OK
