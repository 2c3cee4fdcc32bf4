"""Connecting to NATS as one role: what the service, the CLI and the demo share.

The first connection fails fast with one line that names the cause (nothing listens, the
server refused the role's credentials, a malformed URL); after that a service connection
reconnects forever, so a restarted nats-server is survived. Permission violations, which
nats-py reports only to the connection's ``error_cb`` (the call itself just times out), are
kept in :attr:`Violations.seen` for whoever wants to name them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import anyio
import nats
import nats.errors
from nats.aio.client import Client

from ._auth import NatsAuth, redact_url

__all__ = ["NatsConnectError", "Violations", "connect_nats", "requires_auth"]

log = logging.getLogger("tgqr.service")

_PERMISSIONS: Final = "permissions violation"


class NatsConnectError(Exception):
    """Raised when the first connection to NATS fails; the message is one line, no secret."""


@dataclass
class Violations:
    """The permission violations the server reported on a connection, in order (nats-py
    gives them lower-cased: ``nats: permissions violation for publish to "tgqr.evt.alice"``)."""

    seen: list[str] = field(default_factory=list)
    log: bool = False
    """Also log each one (a long-running service: nobody else would see it)."""
    _changed: anyio.Event = field(default_factory=anyio.Event, repr=False)

    def add(self, text: str) -> None:
        self.seen.append(text)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait(self, after: int) -> str:
        """The first violation past the first ``after``; blocks until there is one."""
        while len(self.seen) <= after:
            await self._changed.wait()
        return self.seen[after]


def requires_auth(nc: Client) -> bool:
    """Whether the server this client is connected to asked it to authenticate."""
    return bool(nc._server_info.get("auth_required"))


def _cause(exc: BaseException | None) -> str:
    if exc is None:
        return "no answer"
    if (
        isinstance(exc, nats.errors.AuthorizationError)
        or "authorization violation" in str(exc).lower()
    ):
        return "authorization violation"
    if isinstance(exc, OSError):
        return os.strerror(exc.errno).lower() if exc.errno else str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
        return "timed out"
    text = str(exc).removeprefix("nats: ").strip("'")
    return text or type(exc).__name__


async def connect_nats(
    urls: Sequence[str],
    *,
    name: str = "tgqr",
    auth: NatsAuth | None = None,
    reconnect: bool = True,
    connect_timeout: float = 5,
    violations: Violations | None = None,
) -> Client:
    """Connect to the first of ``urls`` that answers, as ``auth``'s role; blocks until
    connected (each URL is tried twice). With ``reconnect`` the client then reconnects forever.

    Raises:
        NatsConnectError: no URL answered, the server refused the credentials, or a URL is
            malformed.
    """
    shown = redact_url(",".join(urls))
    last: list[BaseException] = []

    async def on_error(exc: Exception) -> None:
        text = str(exc)
        if _PERMISSIONS in text.lower():
            if violations is not None:
                violations.add(text)
            if violations is None or violations.log:
                log.warning("nats: %s", text.removeprefix("nats: "))
            return
        last.append(exc)
        if reconnect_forever:
            log.warning("nats: %s", _cause(exc))

    async def on_disconnect() -> None:
        if reconnect_forever:
            log.info("nats: disconnected (reconnecting unless closing)")

    async def on_reconnect() -> None:
        log.info("nats: reconnected")

    reconnect_forever = False
    options = auth.connect_options() if auth is not None else {}
    try:
        nc = await nats.connect(
            servers=list(urls),
            name=name,
            # Bounded for the first connection; unbounded below once it stands.
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            connect_timeout=connect_timeout,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            **options,
        )
    except (OSError, TimeoutError, ValueError, nats.errors.Error) as exc:
        causes = [_cause(e) for e in (*last, exc)]
        # The server closes after refusing: a later try's reset must not hide the refusal.
        cause = "authorization violation" if "authorization violation" in causes else causes[0]
        who = f" as {auth.describe()}" if auth is not None else ""
        if cause == "authorization violation":
            raise NatsConnectError(f"NATS at {shown} refused the credentials{who}") from None
        raise NatsConnectError(f"cannot reach NATS at {shown}: {cause}") from None
    if reconnect:
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 0.5
        reconnect_forever = True
    else:
        nc.options["allow_reconnect"] = False
    return nc
