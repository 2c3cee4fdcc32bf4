"""The tenant's events as the page sees them: the folded history and the live stream.

History comes from the log (``load_tenant``: the tenant's chain as it verifies), live events
from the tenant's subject (:meth:`PageBus.follow`), each checked as the chain's next link
(:func:`._view.apply_item`: its MAC, and its ``prev`` against the last folded event), so that
neither a forged event nor a genuine one replayed out of place changes what the page shows. The
live stream is server-sent events: one ``state`` event with the whole view whenever it changes,
a comment every ``keepalive_s``, and ``end`` when the link expires. Under auth the log the page
reads is a mirror that may trail the service by milliseconds: the stream follows it, and
nothing assumes an event is visible as soon as a command was answered.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from events import StoredMessage, decode_stored

from ._deps import PageDeps
from ._links import LinkClaims
from ._render import view_json
from ._view import PageView, apply_item, view_of

__all__ = ["EventStream", "apply_message", "load_view"]

log = logging.getLogger("tgqr.page")

_encoder: Final = msgspec.json.Encoder()
_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"x-accel-buffering", b"no"),  # proxies must not hold the stream back
]

Write = Callable[[bytes], Awaitable[None]]


async def load_view(deps: PageDeps, tenant: str) -> PageView:
    """The tenant's page as its stored chain tells it.

    Raises:
        EventLogUnavailableError: the log did not answer.
    """
    return view_of(await deps.log.load_tenant(tenant))


def apply_message(deps: PageDeps, view: PageView, message: StoredMessage) -> PageView:
    """``view`` after one live message: decoded, checked as the chain's next link, folded
    (or recorded as bad: the page then shows the tenant on hold)."""
    return apply_item(view, decode_stored(message), deps.chain_key)


def _sse(kind: str, data: dict[str, object]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _encoder.encode(data) + b"\n\n"


def _changed(old: dict[str, object], new: dict[str, object]) -> bool:
    return {k: v for k, v in old.items() if k != "now"} != {
        k: v for k, v in new.items() if k != "now"
    }


class EventStream(Response):
    """ASGI response: the live ``text/event-stream`` of one page, from ``view`` on.

    Ends when the link expires (``end``), the client goes away, or ``closing`` is set (the
    server is stopping); each of those cancels the others, in one task group. It holds one of
    ``deps.streams``' slots for the tenant (taken by the caller) and gives it back when done.
    """

    def __init__(
        self,
        deps: PageDeps,
        claims: LinkClaims,
        view: PageView,
        closing: anyio.Event,
        *,
        lang: str = "en",
    ) -> None:
        super().__init__(media_type="text/event-stream")
        self._lang = lang
        self._deps = deps
        self._claims = claims
        self._view = view
        self._closing = closing

    async def __call__(self, _: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._serve(receive, send)
        finally:
            self._deps.streams.give_back(self._claims.tenant)

    async def _serve(self, receive: Receive, send: Send) -> None:
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
        last = view_json(view, deps.clock(), self._lang)
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
                current = view_json(view, deps.clock(), self._lang)
                if _changed(last, current):
                    last = current
                    await write(_sse("state", current))
