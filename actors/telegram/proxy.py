"""A tenant's proxy: ``socks5://[user:pass@]host:port`` or ``http://[user:pass@]host:port``
(HTTP CONNECT), as Telethon uses it through ``python-socks``.

The URL holds credentials: it is a secret. Only :attr:`Proxy.label` (scheme, host and port)
and :attr:`Proxy.fingerprint` may appear in an event, a log line or a status; the repr shows
the label alone. Pure: no IO.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote, unquote

__all__ = ["Proxy", "ProxyUrlError"]

_SCHEMES: Final = ("socks5", "http")
_MAX_URL: Final = 512
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^\[[0-9A-Fa-f:.]+\]$")


class ProxyUrlError(ValueError):
    """Raised for a proxy URL that cannot be used; the message never repeats the URL (it may
    hold a password)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """Where a tenant's Telegram connections go through; the repr shows the label only."""

    scheme: Literal["socks5", "http"]
    host: str
    port: int
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """``socks5://[user:pass@]host:port`` or ``http://[user:pass@]host:port``.

        Raises:
            ProxyUrlError: another scheme (``mtproxy://`` is not supported), no port, a bad
                host or a URL longer than 512 characters.
        """
        if len(url) > _MAX_URL:
            raise ProxyUrlError(f"the proxy URL must be at most {_MAX_URL} characters")
        scheme, sep, rest = url.strip().partition("://")
        scheme = scheme.lower()
        if scheme == "mtproxy":
            raise ProxyUrlError("MTProxy is not supported yet: use socks5:// or http://")
        if not sep or scheme not in _SCHEMES:
            raise ProxyUrlError(
                "the proxy must look like socks5://[user:pass@]host:port or http://…"
            )
        userinfo, at, hostport = rest.rpartition("@")
        if "/" in hostport or "?" in hostport or "#" in hostport:
            raise ProxyUrlError("the proxy URL takes no path: socks5://[user:pass@]host:port")
        host, colon, port_text = hostport.rpartition(":")
        if not colon or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ProxyUrlError("the proxy URL needs a port from 1 to 65535")
        if not host or not _HOST.match(host):
            raise ProxyUrlError("the proxy URL's host must be a name or an IP address")
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
        return hashlib.sha256(whole).hexdigest()[:12]

    @property
    def url(self) -> str:
        """The full URL, credentials included (a secret: seal it)."""
        if not self.username:
            return self.label
        user = quote(self.username, safe="")
        password = quote(self.password, safe="")
        return f"{self.scheme}://{user}:{password}@{self.label.partition('://')[2]}"

    def telethon(self) -> dict[str, Any]:
        """Telethon's ``proxy=`` argument (a dict, as ``python-socks`` takes it)."""
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
