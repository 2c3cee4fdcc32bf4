"""The page's HTTP server: uvicorn's ``Server.serve()`` inside the service's own task group.

The socket is bound once, when the server is opened, so its address is known (port 0 picks a
free one) before anything serves, and a restarted server keeps it. uvicorn's signal handlers
are disabled: the service owns SIGINT/SIGTERM. Cancelling :meth:`PageServer.run` ends every live
stream, lets uvicorn finish its open responses (at most a few seconds) and returns; it runs in
the caller's event loop, no thread and no second loop.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Final, Self

import anyio
import uvicorn
from anyio.abc import TaskStatus
from nats.aio.client import Client

from events import ChainKey, EventLog

from ._app import build_app
from ._bus import Limiter, NatsBus
from ._deps import PageDeps, utcnow
from ._links import DEFAULT_LINK_TTL_S, LinkKey, LinkSigner
from ._security import origin_of

__all__ = ["DEFAULT_HTTP", "HttpAddressError", "PageServer", "open_page_server", "parse_http"]

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
    """uvicorn without its signal handlers (the service has its own)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class PageServer:
    """A bound HTTP socket and the page app; :meth:`run` serves it. See :func:`open_page_server`."""

    def __init__(self, sock: socket.socket, deps: PageDeps, url: str) -> None:
        self._sock = sock
        self._deps = deps
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
        """The base of the links it issues (``TGQR_PUBLIC_URL``, else :attr:`url`)."""
        return self._deps.signer.base_url

    def links(self, tenant: str, ttl_s: int = DEFAULT_LINK_TTL_S) -> dict[str, object]:
        """A new link to ``tenant``'s page: the ``link`` command's reply fields."""
        return self._deps.signer.issue(tenant, ttl_s).to_json()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (then stop within about ``SHUTDOWN_S`` seconds).

        Raises:
            RuntimeError: uvicorn stopped by itself (the caller restarts it).
        """
        closing = anyio.Event()
        config = uvicorn.Config(
            build_app(self._deps, closing=closing),
            http="h11",
            ws="none",
            lifespan="on",
            log_config=None,
            log_level="warning",
            access_log=False,  # its lines would hold the link tokens
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=SHUTDOWN_S,
        )
        server = _Server(config)
        sock = self._sock.dup()  # uvicorn closes what it is given; the bound socket stays
        stopped = anyio.Event()

        async def serve() -> None:
            # Shielded: on cancellation uvicorn is asked to stop (below), not torn down.
            with anyio.CancelScope(shield=True):
                try:
                    await server.serve(sockets=[sock])
                except SystemExit as exc:  # uvicorn's way to report a failed start
                    raise RuntimeError("the web server did not start") from exc
                finally:
                    stopped.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            task_status.started()
            try:
                await stopped.wait()
            finally:
                closing.set()
                server.should_exit = True
        raise RuntimeError("the web server stopped by itself")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=512)
    except OSError as exc:
        shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise HttpAddressError(
            f"cannot listen on {shown} ({exc.strerror or exc}); choose another with --http"
        ) from None


def open_page_server(
    address: str,
    *,
    nc: Client,
    event_log: EventLog,
    chain_key: ChainKey,
    link_key: LinkKey,
    limiter: Limiter,
    stream: str,
    public_url: str | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> PageServer:
    """Bind ``address`` now and make the page's server (close it, or use it as a context).

    ``public_url``: the base of the links (behind a proxy, or when bound to all interfaces);
    default the bound address.

    Raises:
        HttpAddressError: the address is malformed or cannot be listened on.
    """
    host, port = parse_http(address)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    url = f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
    base = (public_url or url).rstrip("/")
    deps = PageDeps(
        log=event_log,
        chain_key=chain_key,
        bus=NatsBus(nc, stream=stream),
        signer=LinkSigner(link_key, base, clock),
        limiter=limiter,
        public_origins=frozenset({origin_of(base), origin_of(url)}),
        clock=clock,
        https=base.startswith("https://"),
    )
    log.info("end user's page on %s (links: %s/l/...)", url, base)
    return PageServer(sock, deps, url)
