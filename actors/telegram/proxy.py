"""A tenant's proxy: ``socks5://[user:pass@]host:port`` or ``http://[user:pass@]host:port``
(HTTP CONNECT), as Telethon uses it through ``python-socks``, or ``mtproxy://SECRET@host:port``
(Telegram's MTProxy; ``SECRET``: 32 hex digits, ``dd`` before them for randomized padding),
through Telethon's MTProxy connection classes.

The URL holds credentials (or the MTProxy secret): it is a secret. Only :attr:`Proxy.label`
(scheme, host and port) and :attr:`Proxy.fingerprint` may appear in an event, a log line or a
status; the repr shows the label alone. Pure: no IO.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote, unquote

__all__ = ["Proxy", "ProxyUrlError"]

_SCHEMES: Final = ("socks5", "http", "mtproxy")
_MTPROXY_SECRET = re.compile(r"^(?:dd)?[0-9a-f]{32}$")
_MAX_URL: Final = 512
_PADDED_SECRET_LEN: Final = 34
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^\[[0-9A-Fa-f:.]+\]$")


class ProxyUrlError(ValueError):
    """Raised for a proxy URL that cannot be used; the message never repeats the URL (it may
    hold a password)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """Where a tenant's Telegram connections go through; the repr shows the label only."""

    scheme: Literal["socks5", "http", "mtproxy"]
    host: str
    port: int
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)  # MTProxy only: lowercase hex

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """``socks5://[user:pass@]host:port``, ``http://[user:pass@]host:port`` or
        ``mtproxy://SECRET@host:port``.

        Raises:
            ProxyUrlError: another scheme, no port, a bad host, an MTProxy secret that is not
                32 hex digits (``dd`` allowed before them), or a URL longer than 512 characters.
        """
        if len(url) > _MAX_URL:
            raise ProxyUrlError(f"the proxy URL must be at most {_MAX_URL} characters")
        scheme, sep, rest = url.strip().partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in _SCHEMES:
            raise ProxyUrlError(
                "the proxy must look like socks5://[user:pass@]host:port, http://… or "
                "mtproxy://SECRET@host:port"
            )
        userinfo, at, hostport = rest.rpartition("@")
        if "/" in hostport or "?" in hostport or "#" in hostport:
            raise ProxyUrlError("the proxy URL takes no path: socks5://[user:pass@]host:port")
        host, colon, port_text = hostport.rpartition(":")
        if not colon or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ProxyUrlError("the proxy URL needs a port from 1 to 65535")
        if not host or not _HOST.match(host):
            raise ProxyUrlError("the proxy URL's host must be a name or an IP address")
        if scheme == "mtproxy":
            secret = userinfo.lower()
            if not _MTPROXY_SECRET.match(secret):
                raise ProxyUrlError(
                    "an MTProxy URL is mtproxy://SECRET@host:port, SECRET 32 hex digits "
                    "(dd before them for randomized padding)"
                )
            return cls("mtproxy", host.strip("[]"), int(port_text), secret=secret)
        username, _, password = userinfo.partition(":") if at else ("", "", "")
        if at and not username:
            raise ProxyUrlError("the proxy URL's user name is empty")
        return cls(
            scheme,  # type: ignore[arg-type]  # checked against _SCHEMES above
            host.strip("[]"),
            int(port_text),
            unquote(username),
            unquote(password),
        )

    def __repr__(self) -> str:  # never the credentials
        return f"Proxy({self.label})"

    @property
    def label(self) -> str:
        """``socks5://host:port``: what events, logs and status may show."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def fingerprint(self) -> str:
        """A short, non-reversible id of the whole proxy, credentials included (so a changed
        password shows as a changed fingerprint)."""
        whole = f"tgqr-proxy|{self.label}|{self.username}|{self.password}".encode()
        if self.secret:
            whole += f"|{self.secret}".encode()
        return hashlib.sha256(whole).hexdigest()[:12]

    @property
    def url(self) -> str:
        """The full URL, credentials included (a secret: seal it)."""
        if self.secret:
            return f"mtproxy://{self.secret}@{self.label.partition('://')[2]}"
        if not self.username:
            return self.label
        user = quote(self.username, safe="")
        password = quote(self.password, safe="")
        return f"{self.scheme}://{user}:{password}@{self.label.partition('://')[2]}"

    def telethon(self) -> dict[str, Any]:
        """Telethon's ``proxy=`` argument for SOCKS5 and HTTP (a dict, as ``python-socks``
        takes it); an MTProxy is :meth:`telethon_mtproxy`'s."""
        proxy: dict[str, Any] = {
            "proxy_type": self.scheme,
            "addr": self.host,
            "port": self.port,
            "rdns": True,
        }
        if self.username:
            proxy["username"] = self.username
            proxy["password"] = self.password
        return proxy

    def telethon_mtproxy(self) -> tuple[str, int, str]:
        """Telethon's ``proxy=`` argument for an MTProxy connection class: host, port and the
        secret in hex (``dd`` first when the proxy wants randomized padding)."""
        return (self.host, self.port, self.secret)

    @property
    def padded(self) -> bool:
        """Whether an MTProxy secret asks for randomized padding (``dd``)."""
        return len(self.secret) == _PADDED_SECRET_LEN
