"""At start, check that the service's NATS user may do what the service needs.

Each probe is something the service does anyway, or a write the server is certain to refuse
(an append expecting a last subject sequence no subject can have), so the probes write nothing
to the log or the buckets. A refused permission shows as a violation on the connection (see
:class:`Violations`) while the call itself only times out; the first one found is named in one
line. A probe that times out with no violation (a slow JetStream) is no proof and is passed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from events.jetstream import STREAM

from ._auth import INBOX_PREFIX
from ._config import ConfigError
from ._connect import Violations

__all__ = ["BUCKETS", "PermissionMissingError", "check_service_permissions"]

BUCKETS: Final = ("tgqr_sessions", "tgqr_leases", "tgqr_dedupe")
PROBE_TENANT: Final = "_tgqr_preflight"
_TIMEOUT_S: Final = 2
# No subject ever reaches this sequence: the append is refused before anything is stored.
_IMPOSSIBLE_SEQ: Final = str(2**62)
_ANSWERS: Final = (
    nats.js.errors.APIError,  # includes NotFoundError and "wrong last sequence"
    # nothing captures the subject (yet), or JetStream is not there: no refusal either
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
)
_SUBSCRIBED: Final = (
    "tgqr.cmd.>",
    "tgqr.query.>",
    "tgqr.session.>",
    "tgqr.sim.>",
    "tgqr.evt.>",
    "$SRV.>",
)


class PermissionMissingError(ConfigError):
    """Raised when the service's NATS user lacks a permission the service needs."""


async def _refused(
    nc: Client, violations: Violations, call: Callable[[], Awaitable[object]]
) -> bool:
    """Whether the server refused ``call``. Its violation arrives within a round trip while a
    refused request would wait for its timeout, so a violation cuts the call short (requests
    may be cancelled; a flush may not: nats-py then pairs later PONGs with the wrong PINGs)."""
    before = len(violations.seen)
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            await violations.wait(before)
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        with contextlib.suppress(*_ANSWERS, nats.errors.TimeoutError, TimeoutError):
            await call()
        tg.cancel_scope.cancel()
    # The server reports a violation before it answers a later PING.
    await nc.flush(timeout=_TIMEOUT_S)
    return len(violations.seen) > before


async def check_service_permissions(nc: Client, violations: Violations, who: str) -> None:
    """Probe what the service publishes, requests and subscribes to; blocks a few ms
    (``_TIMEOUT_S`` per refused probe).

    Raises:
        PermissionMissingError: naming the first permission the server refused.
    """
    js = nc.jetstream(timeout=_TIMEOUT_S)
    sealed = {"Nats-Expected-Last-Subject-Sequence": _IMPOSSIBLE_SEQ}

    def missing(verb: str, subject: str, purpose: str) -> PermissionMissingError:
        return PermissionMissingError(
            f"NATS user of {who} may not {verb} {subject} ({purpose}): "
            "grant it as nats.conf does for role service"
        )

    if await _refused(nc, violations, js.account_info):
        raise missing("publish", "$JS.API.INFO", "JetStream account info")
    streams = [(STREAM, "the event stream")] + [(f"KV_{b}", f"bucket {b}") for b in BUCKETS]
    for stream, purpose in streams:
        # A body naming another stream: the API answers with an error and changes nothing.
        mismatch = json.dumps({"name": "tgqr preflight", "stream_name": "tgqr preflight"})
        probes = [
            (f"$JS.API.STREAM.INFO.{stream}", b"", f"info on {purpose}"),
            (f"$JS.API.STREAM.CREATE.{stream}", mismatch.encode(), f"creating {purpose}"),
            (f"$JS.API.STREAM.UPDATE.{stream}", mismatch.encode(), f"updating {purpose}"),
            (f"$JS.API.STREAM.MSG.GET.{stream}", b"{}", f"reading {purpose}"),
            (f"$JS.API.CONSUMER.CREATE.{stream}", mismatch.encode(), f"following {purpose}"),
        ]
        for subject, body, what in probes:

            async def ask(subject: str = subject, body: bytes = body) -> None:
                await nc.request(subject, body, timeout=_TIMEOUT_S)

            if await _refused(nc, violations, ask):
                raise missing("publish", subject, what)
    appends: list[tuple[str, str, str, str | None]] = [
        (f"tgqr.evt.{PROBE_TENANT}", "tgqr.evt.>", "event appends", STREAM)
    ]
    appends += [(f"$KV.{b}.{PROBE_TENANT}", f"$KV.{b}.>", f"writes to {b}", None) for b in BUCKETS]
    for subject, pattern, purpose, stream_name in appends:

        async def append(subject: str = subject, stream_name: str | None = stream_name) -> None:
            await js.publish(subject, b"", stream=stream_name, headers=dict(sealed))

        if await _refused(nc, violations, append):
            raise missing("publish", pattern, purpose)
    for pattern in (*_SUBSCRIBED, f"{INBOX_PREFIX['service']}.>"):

        async def subscribe(pattern: str = pattern) -> None:
            sub = await nc.subscribe(pattern)
            with anyio.CancelScope(shield=True):
                await sub.unsubscribe()

        if await _refused(nc, violations, subscribe):
            raise missing("subscribe to", pattern, "what the service serves")
