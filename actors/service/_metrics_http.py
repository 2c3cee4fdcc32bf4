"""The service's operations port: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

A small Starlette app on uvicorn, in the service's own event loop (no thread, no process),
on its own address (``--metrics`` / ``TGQR_METRICS``, loopback by default): it never shares
the end user's page port. Reads are bounded like the page's (slow headers are cut, few
connections per client). ``/healthz`` answers while the event loop does; ``/readyz`` answers
503 with one line per problem until NATS is connected and the event stream answers.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from actors.gateway.page import (
    ConnectionGuard,
    HttpAddressError,
    ServeLimits,
    bind_http,
    guarded_protocol,
    serve_uvicorn,
    url_of,
)
from actors.metrics import Exposition

from ._config import DEFAULT_METRICS, ConfigError

__all__ = ["METRICS_LIMITS", "MetricsServer", "bind_metrics", "readiness"]

log = logging.getLogger("tgqr.service")

METRICS_LIMITS: Final = ServeLimits(max_connections=64, max_per_client=16, max_streams=0)
"""A scraper, a health checker or two: nobody needs more."""
READY_CACHE_S: Final = 1.0
"""A flood of ``/readyz`` costs NATS one stream lookup a second."""

Check = Callable[[], Awaitable[list[str]]]


def bind_metrics(address: str) -> socket.socket | None:
    """A listening socket for ``address``; None (with a warning) when it is the default
    address and that is taken (a second instance on the host), else a :class:`ConfigError`.
    """
    try:
        return bind_http(address)
    except HttpAddressError as exc:
        if address == DEFAULT_METRICS:
            log.warning(
                "metrics: %s is taken (another tgqr?); serving no /metrics, /healthz or "
                "/readyz: choose an address with --metrics or TGQR_METRICS",
                address,
            )
            return None
        raise ConfigError(str(exc).replace("--http", "--metrics")) from None


def readiness(
    serving: anyio.Event,
    is_connected: Callable[[], bool],
    stream_ok: Callable[[], Awaitable[object]],
    more: Callable[[], list[str]] = list,
) -> Check:
    """A readiness check: every part started (``serving`` is set), NATS connected,
    ``stream_ok()`` returns within 2 s (it raises or times out otherwise), and ``more()`` names
    no problem (this instance's membership). One check runs at a time; its answer is reused
    for a second."""
    lock = anyio.Lock()
    cached: tuple[float, list[str]] = (-READY_CACHE_S, [])

    async def check() -> list[str]:
        nonlocal cached
        async with lock:
            now = anyio.current_time()
            if now - cached[0] < READY_CACHE_S:
                return cached[1]
            problems: list[str] = [] if serving.is_set() else ["service: starting"]
            problems += more()
            if not is_connected():
                problems.append("nats: not connected")
            else:
                try:
                    with anyio.fail_after(2):
                        await stream_ok()
                except Exception as exc:  # any failure is "not ready", said in one line
                    problems.append(f"event stream: {type(exc).__name__}")
            cached = (anyio.current_time(), problems)
            return problems

    return check


def _app(exposition: Exposition | None, ready: Check) -> Starlette:
    # Rendered in a worker thread, one scrape at a time: with the tenant label on, a scrape
    # of 10,000 tenants takes seconds of CPU, which must not stall the actors' event loop.
    one_at_a_time = anyio.CapacityLimiter(1)

    async def metrics(request: Request) -> Response:
        if exposition is None:
            return PlainTextResponse("metrics are off\n", status_code=404)
        body, content_type = await anyio.to_thread.run_sync(
            exposition.render, request.headers.get("accept", ""), limiter=one_at_a_time
        )
        return Response(body, media_type=content_type)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        problems = await ready()
        if problems:
            return PlainTextResponse("".join(f"{p}\n" for p in problems), status_code=503)
        return PlainTextResponse("ready\n")

    return Starlette(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


class MetricsServer:
    """The operations port on a bound socket; :meth:`run` serves it until cancelled."""

    def __init__(self, sock: socket.socket, exposition: Exposition | None, ready: Check) -> None:
        self._sock = sock
        self._app = _app(exposition, ready)
        self.url = url_of(sock)
        """``http://HOST:PORT`` (the actual port when bound to port 0)."""

    def close(self) -> None:
        """Stop listening (after :meth:`run` has returned)."""
        self._sock.close()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; then uvicorn finishes open responses (at most 1 s).

        Raises:
            RuntimeError: uvicorn stopped by itself (the caller restarts it).
        """
        config = uvicorn.Config(
            self._app,
            http=guarded_protocol(ConnectionGuard(METRICS_LIMITS)),
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_keep_alive=METRICS_LIMITS.keep_alive_s,
            timeout_graceful_shutdown=1,
        )
        await serve_uvicorn(config, self._sock, what="metrics server", task_status=task_status)
