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
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import nats
import nats.errors
from nats.aio.client import Client

from actors.telemetry import Telemetry

from ._auth import NatsAuth, redact_url
from ._errlog import KEEP_VIOLATIONS, PERMISSIONS, ConnectionErrors, error_kind

__all__ = ["NatsConnectError", "Violations", "connect_nats", "requires_auth"]

log = logging.getLogger("tgqr.service")

_KEEP_CAUSES: Final = 8
_GIVE_UP_AFTER_S: Final = 8.0
"""How long a first connection may take in all, whatever the URLs (the CLI's limit is 10 s)."""


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
    give_up_after: float = _GIVE_UP_AFTER_S,
    telemetry: Telemetry | None = None,
) -> Client:
    """Connect to the first of ``urls`` that answers, as ``auth``'s role; blocks until
    connected, for at most ``give_up_after`` seconds (each URL is tried twice, in the order
    given). With ``reconnect`` the client then reconnects forever.

    Errors the connection reports later count on ``telemetry``'s ``tgqr_nats_errors_total``
    (the global providers' when None); a service connection (``reconnect``) logs them, one
    line per kind and interval with the count, whatever the storm.

    Only ``urls`` are tried: the servers a cluster announces join the pool for later
    reconnects, but the first connection never loops over them (nats-py would, forever, when
    they refuse the credentials: each refused server it drops comes back with the next
    announcement).

    Raises:
        NatsConnectError: no URL answered in time, the server refused the credentials, or a
            URL is malformed.
    """
    shown = redact_url(",".join(urls))
    last: list[BaseException] = []
    errors = ConnectionErrors(telemetry)

    async def on_error(exc: Exception) -> None:
        # Awaited by nats-py's read loop, once per dropped message in a slow-consumer storm:
        # a counter, and at most one log line per kind and interval (ConnectionErrors).
        kind = error_kind(exc)
        errors.count(kind)
        if kind == PERMISSIONS:
            text = str(exc)
            if violations is not None and len(violations.seen) < KEEP_VIOLATIONS:
                violations.add(text)
            if violations is None or violations.log:
                errors.log(kind, text)
            return
        if not reconnect_forever:
            if len(last) < _KEEP_CAUSES:
                last.append(exc)  # named if the first connection fails
            return
        if isinstance(exc, nats.errors.SlowConsumerError):
            errors.log(kind, f"on {exc.subject}")
        else:
            errors.log(kind, _cause(exc))

    async def on_closed() -> None:
        errors.flush()

    async def on_disconnect() -> None:
        if reconnect_forever:
            log.info("nats: disconnected (reconnecting unless closing)")

    async def on_reconnect() -> None:
        log.info("nats: reconnected")

    reconnect_forever = False
    options = auth.connect_options() if auth is not None else {}
    failure: BaseException | None = None
    nc: Client | None = None
    # (nats-py annotates both as int; it takes floats)
    times: dict[str, Any] = {"reconnect_time_wait": 0.2, "connect_timeout": connect_timeout}
    with anyio.move_on_after(give_up_after) as deadline:
        # One try per starting URL: a URL that answers but fails the handshake (not NATS, or
        # too slow) must not hide the ones after it. A refusal of the credentials is final.
        for start in range(max(1, len(urls))):
            client = Client()
            try:
                await client.connect(
                    servers=[*urls[start:], *urls[:start]],
                    name=name,
                    dont_randomize=True,
                    # Bounded for the first connection; unbounded below once it stands.
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    **times,
                    error_cb=on_error,
                    closed_cb=on_closed,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                    **options,
                )
            except (OSError, TimeoutError, ValueError, nats.errors.Error) as exc:
                await _discard(client)
                failure = exc
                if isinstance(exc, nats.errors.NoServersError) or _refused([*last, exc]):
                    break
                continue
            except BaseException:
                await _discard(client)
                raise
            nc = client
            break
    if nc is None:
        seen = [*last, *([failure] if failure is not None else [])]
        raise _connect_error(shown, auth, seen, timed_out=deadline.cancelled_caught)
    if reconnect:
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 0.5
        nc.options["dont_randomize"] = False
        reconnect_forever = True
    return nc


def _refused(errors: Sequence[BaseException]) -> bool:
    return any(_cause(e) == "authorization violation" for e in errors)


def _connect_error(
    shown: str, auth: NatsAuth | None, errors: Sequence[BaseException], *, timed_out: bool
) -> NatsConnectError:
    # The server closes after refusing: a later try's reset must not hide the refusal.
    if _refused(errors):
        who = f" as {auth.describe()}" if auth is not None else ""
        return NatsConnectError(f"NATS at {shown} refused the credentials{who}")
    cause = "timed out" if timed_out or not errors else _cause(errors[0])
    return NatsConnectError(f"cannot reach NATS at {shown}: {cause}")


async def _discard(client: Client) -> None:
    """Close a client whose first connection failed (its socket may be open)."""
    # nats-py asserts when the failure came before any socket (a malformed URL).
    with anyio.CancelScope(shield=True), anyio.move_on_after(2), suppress(AssertionError):
        await client.close()
