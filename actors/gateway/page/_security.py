"""The page's security headers, and the same-origin check of its forms.

The CSP allows scripts and styles only as files from this origin (``/static/``), no inline
code, no ``eval``, no third-party anything; the one DOM sink the script uses (parsing the QR
code's SVG) is behind a Trusted Types policy that accepts only the QR markup. Framing is allowed
for this origin and Telegram's web client (``frame-ancestors``), so the page also works as a
Telegram Mini App: Telegram's phone and desktop apps open Mini Apps in a web view (no framing
involved); web.telegram.org opens them in an iframe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "FRAME_ANCESTORS", "SecurityHeaders", "origin_of", "same_origin"]

FRAME_ANCESTORS: Final = ("'self'", "https://web.telegram.org")

CSP: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors " + " ".join(FRAME_ANCESTORS),
        "require-trusted-types-for 'script'",
        "trusted-types tgqr-qr",
    )
)

_HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)


class SecurityHeaders:
    """ASGI middleware: every HTTP response gets the headers above (replacing any the app
    set), and ``Strict-Transport-Security`` when the public URL is https."""

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self._app = app
        extra = ((b"strict-transport-security", b"max-age=31536000"),) if https else ()
        self._headers = (*_HEADERS, *extra)
        self._names = {name for name, _ in self._headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in self._names
                ]
                message = {**message, "headers": [*kept, *self._headers]}
            await send(message)

        await self._app(scope, receive, send_with_headers)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased (what browsers send as ``Origin``)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(headers: dict[str, str], allowed: Iterable[str]) -> bool:
    """Whether a form POST comes from one of our own pages.

    Browsers send ``Sec-Fetch-Site`` with every request: only ``same-origin`` passes. Without
    it (older browsers), an ``Origin`` must be ours; ``Origin: null`` is what a same-origin POST
    carries under ``Referrer-Policy: no-referrer``, so it passes, as does none (curl): those
    still need the link token and a valid CSRF token.
    """
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = headers.get("origin")
    return origin is None or origin == "null" or origin.lower() in set(allowed)
