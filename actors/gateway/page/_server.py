"""The page's HTTP server: uvicorn's ``Server.serve()`` with read deadlines and connection caps.

The socket is bound before the server runs (port 0 picks a free one), or handed over already
bound (``tgqr up`` binds it and passes it to the page process it starts), so its address is
known before anything serves, and a restarted server keeps it. uvicorn's signal handlers are
disabled: the caller owns SIGINT/SIGTERM. Cancelling :meth:`PageServer.run` ends every live
stream, lets uvicorn finish its open responses (at most a few seconds) and returns; it runs in
the caller's event loop, no thread and no second loop. The bounds (:class:`ServeLimits`) are
kept by :mod:`._guard` (connections, read deadlines) and the app (live streams).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Final, NoReturn, Self

import anyio
import uvicorn
from anyio.abc import TaskStatus

from events import ChainKey

from ._app import build_app
from ._bus import Limiter, PageBus, TenantReader
from ._deps import PageDeps, utcnow
from ._guard import ConnectionGuard, guarded_protocol
from ._initdata import TelegramAuth
from ._limits import ServeLimits, StreamSlots
from ._links import LinkKey, LinkSigner
from ._metrics import page_exposition
from ._security import origin_of

__all__ = [
    "DEFAULT_HTTP",
    "HttpAddressError",
    "PageServer",
    "bind_http",
    "open_page_server",
    "parse_http",
    "serve_uvicorn",
    "url_of",
]

log = logging.getLogger("tgqr.page")

DEFAULT_HTTP: Final = "127.0.0.1:8080"
SHUTDOWN_S: Final = 3


class HttpAddressError(ValueError):
    """Raised for an HTTP address that is malformed or cannot be listened on."""


def parse_http(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as (host, port); port 0 picks a free one.

    Raises:
        HttpAddressError: not of that form, or the port is outside 0..65535.
    """
    host, sep, port_text = address.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise HttpAddressError(f"HTTP address must look like 127.0.0.1:8080, not {address!r}")
    return host, int(port_text)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the caller has its own)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_uvicorn(
    config: uvicorn.Config,
    sock: socket.socket,
    *,
    what: str,
    on_stop: Callable[[], object] | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve ``config`` on the listening ``sock`` until cancelled (uvicorn gets a duplicate: it
    closes what it is given, and the bound socket stays for a restart); ready at once, since
    the socket already listens and connections wait in its backlog. On cancellation uvicorn is
    asked to stop (``on_stop`` first) and finishes open responses, not torn down.

    Raises:
        RuntimeError: uvicorn did not start, or stopped by itself (the caller restarts it).
    """
    server = _Server(config)
    dup = sock.dup()
    stopped = anyio.Event()

    async def serve() -> None:
        with anyio.CancelScope(shield=True):
            try:
                await server.serve(sockets=[dup])
            except SystemExit as exc:  # uvicorn's way to report a failed start
                raise RuntimeError(f"the {what} did not start") from exc
            finally:
                stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        task_status.started()
        try:
            await stopped.wait()
        finally:
            if on_stop is not None:
                on_stop()
            server.should_exit = True
    raise RuntimeError(f"the {what} stopped by itself")


def url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket (``[v6]`` for IPv6)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


class PageServer:
    """A bound HTTP socket and the page app; :meth:`run` serves it. See :func:`open_page_server`."""

    def __init__(self, sock: socket.socket, deps: PageDeps, url: str, limits: ServeLimits) -> None:
        self._sock = sock
        self._deps = deps
        self._limits = limits
        self.guard = ConnectionGuard(limits)
        """The server's connections (:meth:`ConnectionGuard.statistics`)."""
        self.url = url
        """Where the server listens, e.g. ``http://127.0.0.1:8080`` (the actual port)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening (after :meth:`run` has returned)."""
        self._sock.close()

    @property
    def public_url(self) -> str:
        """Where users reach the page (``TGQR_PUBLIC_URL``, else :attr:`url`)."""
        return self._deps.signer.base_url

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (then stop within about ``SHUTDOWN_S`` seconds).

        Raises:
            RuntimeError: uvicorn stopped by itself (the caller restarts it).
        """
        closing = anyio.Event()
        config = uvicorn.Config(
            build_app(
                self._deps,
                closing=closing,
                metrics=page_exposition(self.guard, self._deps.streams),
            ),
            http=guarded_protocol(self.guard),
            ws="none",
            lifespan="on",
            log_config=None,
            log_level="warning",
            access_log=False,  # its lines would hold the link tokens
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=self._limits.keep_alive_s,
            timeout_graceful_shutdown=SHUTDOWN_S,
        )
        await serve_uvicorn(
            config, self._sock, what="web server", on_stop=closing.set, task_status=task_status
        )


def bind_http(address: str) -> socket.socket:
    """A listening socket on ``HOST:PORT`` (see :func:`parse_http`).

    Raises:
        HttpAddressError: the address is malformed or cannot be listened on.
    """
    host, port = parse_http(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise HttpAddressError(
            f"cannot listen on {shown} ({exc.strerror or exc}); choose another with --http"
        ) from None


def open_page_server(
    sock: socket.socket,
    *,
    bus: PageBus,
    event_log: TenantReader,
    chain_key: ChainKey,
    link_key: LinkKey,
    limiter: Limiter,
    limits: ServeLimits = ServeLimits(),  # noqa: B008 - frozen
    public_url: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    telegram: TelegramAuth | None = None,
) -> PageServer:
    """The page's server on the listening socket ``sock`` (it closes it when closed).

    ``public_url``: where users reach the page (behind a proxy, or when bound to all
    interfaces); default the bound address. Forms are accepted from both origins.
    ``telegram``: how a Mini App's launch data is checked (None: it is ignored).
    """
    url = url_of(sock)
    base = (public_url or url).rstrip("/")
    deps = PageDeps(
        log=event_log,
        chain_key=chain_key,
        bus=bus,
        signer=LinkSigner(link_key, base, clock),
        limiter=limiter,
        public_origins=frozenset({origin_of(base), origin_of(url)}),
        streams=StreamSlots(limits.max_streams, limits.max_streams_per_tenant),
        clock=clock,
        https=base.startswith("https://"),
        telegram=telegram,
    )
    log.info("end user's page on %s (links: %s/l/...)", url, base)
    return PageServer(sock, deps, url, limits)
