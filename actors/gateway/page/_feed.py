"""The tenant's events as the page sees them: the folded history and the live stream.

History comes from the service's :class:`~events.EventLog` (``read_tenant``), live events from
the tenant's subject (:meth:`PageBus.follow`), both decoded by the events codec; only events
whose chain MAC verifies (``ChainKey.check``) change what the page shows. The live stream is
server-sent events: one ``state`` event with the whole view whenever it changes, a comment
every ``keepalive_s``, and ``end`` when the link expires.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Final

import anyio
import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from events import EventLogError, EventLogUnavailableError, Record, StoredMessage, decode_stored

from ._deps import PageDeps
from ._links import LinkClaims
from ._render import view_json
from ._view import PageView, apply_record

__all__ = ["EventStream", "apply_message", "load_view"]

log = logging.getLogger("tgqr.page")

_encoder: Final = msgspec.json.Encoder()
_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"x-accel-buffering", b"no"),  # proxies must not hold the stream back
]

Write = Callable[[bytes], Awaitable[None]]


def _verified(deps: PageDeps, record: Record) -> bool:
    return deps.chain_key.check(record.data, record.mac)


async def load_view(deps: PageDeps, tenant: str) -> PageView:
    """The tenant's page as its stored, verified events tell it.

    Raises:
        EventLogUnavailableError: the log did not answer.
    """
    view = PageView.empty(tenant)
    try:
        records = await deps.log.read_tenant(tenant)
    except EventLogUnavailableError:
        raise
    except EventLogError:
        # The log itself refuses the tenant (undecodable or unverified messages).
        return replace(view, quarantined=True)
    for record in records:
        view = apply_record(view, record, verified=_verified(deps, record))
    return view


def apply_message(deps: PageDeps, view: PageView, message: StoredMessage) -> PageView:
    """``view`` after one live message: decoded, verified, folded (or quarantined)."""
    item = decode_stored(message)
    if not isinstance(item, Record):
        return replace(view, seq=max(view.seq, message.seq), quarantined=True)
    return apply_record(view, item, verified=_verified(deps, item))


def _sse(kind: str, data: dict[str, object]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _encoder.encode(data) + b"\n\n"


def _changed(old: dict[str, object], new: dict[str, object]) -> bool:
    return {k: v for k, v in old.items() if k != "now"} != {
        k: v for k, v in new.items() if k != "now"
    }


class EventStream(Response):
    """ASGI response: the live ``text/event-stream`` of one page, from ``view`` on.

    Ends when the link expires (``end``), the client goes away, or ``closing`` is set (the
    server is stopping); each of those cancels the others, in one task group.
    """

    def __init__(
        self, deps: PageDeps, claims: LinkClaims, view: PageView, closing: anyio.Event
    ) -> None:
        super().__init__(media_type="text/event-stream")
        self._deps = deps
        self._claims = claims
        self._view = view
        self._closing = closing

    async def __call__(self, _: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})

        async def write(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async with anyio.create_task_group() as tg:

            async def until(wait: Callable[[], Awaitable[None]]) -> None:
                await wait()
                tg.cancel_scope.cancel()

            async def disconnected() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass

            async def produce() -> None:
                try:
                    await self._produce(write)
                except OSError:
                    pass  # the client is gone
                except Exception as exc:
                    name = type(exc).__name__
                    log.warning(
                        "tenant=%s page: live updates ended (%s)", self._claims.tenant, name
                    )

            tg.start_soon(until, produce)
            tg.start_soon(until, disconnected)
            tg.start_soon(until, self._closing.wait)
        with contextlib.suppress(OSError):  # the client may be gone
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _produce(self, write: Write) -> None:
        deps, claims, view = self._deps, self._claims, self._view
        last = view_json(view, deps.clock())
        await write(b"retry: 3000\n\n" + _sse("state", last))
        async with deps.bus.follow(claims.tenant, view.seq) as messages:
            while True:
                left = (claims.expires_at - deps.clock()).total_seconds()
                if left <= 0:
                    await write(_sse("end", {"reason": "link_expired"}))
                    return
                message: StoredMessage | None = None
                with anyio.move_on_after(min(deps.keepalive_s, left)):
                    try:
                        message = await messages.receive()
                    except anyio.EndOfStream:
                        return
                if message is None:
                    await write(b": keepalive\n\n")
                    continue
                view = apply_message(deps, view, message)
                current = view_json(view, deps.clock())
                if _changed(last, current):
                    last = current
                    await write(_sse("state", current))
