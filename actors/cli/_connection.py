"""What every client command shares: exit codes, the user-facing error, the NATS connection
and request/reply with the service's ``{"ok": ...}`` contract."""

from __future__ import annotations

import argparse
import json
import os
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import nats.errors
from nats.aio.client import Client

from actors.service import (
    NATS_URL_FILE,
    ConfigError,
    NatsAuth,
    NatsConnectError,
    Role,
    Violations,
    connect_nats,
    resolve_auth,
)

__all__ = [
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "ServiceError",
    "connected",
    "data_dir",
    "request",
    "role_of",
]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


class ServiceError(CliError):
    """The service answered ``{"ok": false, ...}``; :attr:`code` is its error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_CLOSED: Final = "the connection to NATS closed (did `tgqr up` stop?)"
"""What a command says when NATS goes away under it."""


def data_dir(args: argparse.Namespace) -> Path:
    """``--data``, else ``$TGQR_DATA``, else ``var``."""
    return Path(args.data or os.environ.get("TGQR_DATA", "var"))


# Which role each command connects as (README, "Roles and credentials"); the rest are `app`.
_ROLE_OF: Final[dict[tuple[str, str | None], Role]] = {
    ("up", None): "service",
    ("audit", None): "auditor",
    ("projections", "rebuild"): "service",
    ("vault", "rotate"): "service",
    ("tenant", "repair"): "service",
    ("sim", "serve"): "service",
    ("sim", "devices"): "service",
    ("sim", "terminate"): "service",
    ("backup", None): "service",
}


def role_of(args: argparse.Namespace) -> Role:
    """The role the command in ``args`` connects as."""
    command, action = args.command, getattr(args, "action", None)
    return _ROLE_OF.get((command, action)) or _ROLE_OF.get((command, None)) or "app"


def _nats_urls(args: argparse.Namespace) -> tuple[list[str], Path | None]:
    """The URLs to try, and the ``nats.url`` file they came from (None: ``--nats``)."""
    if args.nats:
        return [u.strip() for u in str(args.nats).split(",") if u.strip()], None
    url_file = data_dir(args) / NATS_URL_FILE
    try:
        text = url_file.read_text().strip()
    except OSError:
        raise CliError(
            f"no running tgqr found ({url_file} is missing): start `tgqr up` or pass --nats URL"
        ) from None
    return [u for u in text.split(",") if u], url_file


# Each CLI connection's permission violations (nats-py reports them only to error_cb).
_VIOLATIONS: Final[weakref.WeakKeyDictionary[Client, tuple[NatsAuth, Violations]]] = (
    weakref.WeakKeyDictionary()
)


async def _connect(
    args: argparse.Namespace, violations: Violations, *, reconnect: bool = False
) -> tuple[Client, NatsAuth]:
    urls, url_file = _nats_urls(args)
    try:
        auth = resolve_auth(
            role_of(args),
            data_dir=data_dir(args),
            urls=urls,
            creds=getattr(args, "creds", None),
            nkey=getattr(args, "nkey", None),
        )
        nc = await connect_nats(
            urls,
            auth=auth,
            name=f"tgqr-cli-{auth.role}",
            reconnect=reconnect,
            connect_timeout=3,
            violations=violations,
        )
    except NatsConnectError as exc:
        text = str(exc)
        if url_file is not None and "connection refused" in text:
            text += f" ({url_file} is stale: is `tgqr up` running?)"
        elif "refused the credentials" in text and "(no credentials)" in text:
            text += ": pass --creds FILE, --nkey FILE or nats://USER:PASSWORD@HOST"
        raise CliError(text) from None
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return nc, auth


@asynccontextmanager
async def connected(args: argparse.Namespace, *, reconnect: bool = False) -> AsyncIterator[Client]:
    """A NATS connection to the service (``--nats``, else the URL ``tgqr up`` wrote) as the
    command's role (:func:`role_of`), closed when the block exits. Blocks while connecting
    (at most a few seconds). ``reconnect``: ride out a lost connection (long-running
    commands such as ``sim serve``).

    Raises:
        CliError: no URL to connect to, bad credentials options, or NATS does not answer
            there or refuses the role's credentials.
    """
    violations = Violations()
    nc, auth = await _connect(args, violations, reconnect=reconnect)
    _VIOLATIONS[nc] = (auth, violations)
    try:
        yield nc
    except Exception as exc:
        # A refused JetStream call only times out: name the refusal instead.
        if violations.seen and not isinstance(exc, CliError):
            what = violations.seen[0].removeprefix("nats: ").strip("'")
            raise CliError(_refusal(auth, what)) from None
        if isinstance(exc, nats.errors.TimeoutError):
            raise CliError("NATS did not answer in time") from None
        raise
    finally:
        await nc.close()


def _refusal(auth: NatsAuth, what: str) -> str:
    return f"NATS refused {auth.describe()}: {what} (see README, 'Roles and credentials')"


async def request(
    nc: Client, subject: str, body: dict[str, Any], wait_s: float = 30
) -> dict[str, Any]:
    """The service's reply to ``body`` on ``subject``; blocks for at most ``wait_s``.

    Raises:
        ServiceError: the reply is ``{"ok": false, ...}``.
        CliError: nobody answers, no answer in time, or the connection closed.
    """
    auth, violations = _VIOLATIONS.get(nc, (NatsAuth("app"), Violations()))
    refused: list[str] = []
    failed: list[str] = []
    msg = None
    # Failures are noted inside the task group and raised after it (a task group wraps
    # whatever its body raises in an exception group).
    async with anyio.create_task_group() as tg:

        async def watch(after: int = len(violations.seen)) -> None:
            await violations.wait(after)
            refused.append(subject)
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        try:
            msg = await nc.request(subject, json.dumps(body).encode(), timeout=wait_s)
        except nats.errors.NoRespondersError:
            failed.append(f"no tgqr service answers on {subject}: is `tgqr up` running?")
        except nats.errors.TimeoutError:
            failed.append(f"no answer on {subject} within {wait_s:.0f}s")
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
            failed.append(_CLOSED)
        tg.cancel_scope.cancel()
    if failed:
        raise CliError(failed[0])
    if refused or msg is None:
        raise CliError(_refusal(auth, f"it may not publish to {subject}"))
    reply: dict[str, Any] = json.loads(msg.data)
    if not reply.get("ok"):
        error = reply.get("error") or {}
        extra = f" (retry in {error['retry_after_s']}s)" if "retry_after_s" in error else ""
        code = str(error.get("code", "error"))
        raise ServiceError(code, f"{code}: {error.get('message', '')}{extra}")
    return reply
