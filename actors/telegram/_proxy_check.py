"""Why a connection through a tenant's proxy failed, in our terms.

Telethon retries a failed connect and then raises a bare ``ConnectionError`` that has lost
the cause (``python-socks``' error). When a client with a proxy cannot connect, the adapter asks
the proxy once more itself, the same way Telethon does, and names what went wrong: the proxy
did not answer (:class:`ProxyUnreachableError`), refused the credentials
(:class:`ProxyAuthError`), or answered but could not reach Telegram. Only the proxy's label
appears in a message.
"""

from __future__ import annotations

import contextlib

import anyio
from python_socks import ProxyType
from python_socks.async_.asyncio import Proxy as SocksProxy

from .port import ProxyAuthError, ProxyUnreachableError, TelegramError, TelegramUnavailableError
from .proxy import Proxy

__all__ = ["diagnose", "explain", "is_proxy_error"]

_TYPES = {"socks5": ProxyType.SOCKS5, "http": ProxyType.HTTP}
_PROXY_AUTH_REQUIRED = 407


def _is_auth_refusal(exc: BaseException) -> bool:
    if getattr(exc, "error_code", None) == _PROXY_AUTH_REQUIRED:
        return True
    text = str(exc).lower()
    return "authentication" in text or "auth reply" in text


def is_proxy_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from ``python-socks`` (Telethon lets some of them through)."""
    return (
        type(exc).__module__.startswith("python_socks")
        or "ConnectionErrorExtra" in type(exc).__qualname__
    )


def explain(proxy: Proxy, exc: BaseException) -> TelegramError:
    """Our error for ``python-socks``' ``exc`` raised while connecting through ``proxy``."""
    label = proxy.label
    if isinstance(exc, TimeoutError):
        return ProxyUnreachableError(f"the proxy {label} did not answer in time")
    if _is_auth_refusal(exc):
        return ProxyAuthError(f"the proxy {label} refused its user name and password")
    if "could not connect to proxy" in str(exc).lower():
        return ProxyUnreachableError(f"the proxy {label} cannot be reached")
    return TelegramUnavailableError(f"the proxy {label} could not reach Telegram")


async def diagnose(proxy: Proxy, host: str, port: int, within_s: float) -> TelegramError:
    """The error that explains a failed connect to ``host:port`` through ``proxy`` (blocks at
    most ``within_s`` seconds; never raises but for cancellation)."""
    if proxy.scheme == "mtproxy":
        return await _diagnose_mtproxy(proxy, within_s)
    socks = SocksProxy(
        _TYPES[proxy.scheme],
        proxy.host,
        proxy.port,
        username=proxy.username or None,
        password=proxy.password or None,
        rdns=True,
    )
    try:
        with anyio.fail_after(within_s):
            sock = await socks.connect(dest_host=host, dest_port=port, timeout=within_s)
    except Exception as exc:  # whatever python-socks raises (Telethon may have replaced them)
        return explain(proxy, exc)
    with contextlib.suppress(OSError):
        sock.close()
    return TelegramUnavailableError(f"Telegram did not answer through the proxy {proxy.label}")


async def _diagnose_mtproxy(proxy: Proxy, within_s: float) -> TelegramError:
    """An MTProxy does not say why it refuses: one that takes the TCP connection and then
    closes it after the 64-byte init most likely holds another secret (or cannot serve the
    DC the init names); one nobody answers on is unreachable."""
    try:
        with anyio.fail_after(within_s):
            stream = await anyio.connect_tcp(proxy.host, proxy.port)
    except (OSError, TimeoutError):
        return ProxyUnreachableError(f"the proxy {proxy.label} cannot be reached")
    await stream.aclose()
    return ProxyAuthError(
        f"the MTProxy {proxy.label} closed the connection: its secret is not the one given"
        " (or it cannot reach Telegram)"
    )
