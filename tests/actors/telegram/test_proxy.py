"""A tenant's proxy, through the Telethon adapter: a real SOCKS5 proxy with a password
(Debian's microsocks) in front of the simulator, real Telethon over TCP."""

from __future__ import annotations

import logging
import socket

import anyio
import pytest

from actors.telegram import (
    LoginSuccess,
    LoginToken,
    Proxy,
    ProxyAuthError,
    ProxyUnreachableError,
    ProxyUrlError,
    TelethonTelegram,
)

from ._mtproxy import mtproxy
from .connect_proxy import http_connect_proxy
from .microsocks import OUTGOING, microsocks
from .tg_harness import SimHarness

pytestmark = pytest.mark.anyio


async def test_a_login_through_socks5_comes_from_the_proxy(running_sim: SimHarness) -> None:
    """The simulator sees the client's connection coming from the proxy's outgoing address."""
    port = TelethonTelegram.for_simulator(running_sim.sim)
    async with microsocks() as socks:
        proxy = Proxy.parse(socks.url())
        async with port.open_client("t", proxy=proxy) as client:
            token = await client.export_token()
            assert isinstance(token, LoginToken)
            running_sim.scan(url=token.url, user_id=41)
            with anyio.fail_after(10):
                await client.wait_scanned()
            assert await client.export_token() == LoginSuccess(41, running_sim.home_dc)
    (seen,) = running_sim.sim.devices(41)
    assert seen.peer.startswith(f"{OUTGOING}:")


async def test_a_wrong_proxy_password_is_a_proxy_auth_error(running_sim: SimHarness) -> None:
    """microsocks refuses the password: ``ProxyAuthError``, whose message holds neither the
    password given nor the right one."""
    port = TelethonTelegram.for_simulator(running_sim.sim, request_timeout=5.0)
    async with microsocks() as socks:
        proxy = Proxy.parse(socks.url(password="wrong-one"))
        with pytest.raises(ProxyAuthError) as refused:
            async with port.open_client("t", proxy=proxy):
                pass
    message = str(refused.value)
    assert "wrong-one" not in message
    assert socks.password not in message
    assert f"127.0.0.1:{socks.port}" in message


async def test_a_proxy_nobody_listens_on_is_unreachable(running_sim: SimHarness) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    port = TelethonTelegram.for_simulator(running_sim.sim, request_timeout=5.0)
    proxy = Proxy.parse(f"socks5://u:p@127.0.0.1:{free}")
    with pytest.raises(ProxyUnreachableError):
        async with port.open_client("t", proxy=proxy):
            pass


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mtproxy://ee00@1.2.3.4:443", "SECRET 32 hex digits"),
        ("mtproxy://1.2.3.4:443", "SECRET 32 hex digits"),
        ("mtproxy://ee" + "0" * 32 + "@1.2.3.4:443", "SECRET 32 hex digits"),
        ("ftp://h:1", "the proxy must look like socks5://"),
        ("socks5://u:hunter2@host", "needs a port"),
        ("socks5://u:hunter2@host:0", "needs a port"),
        ("socks5://u:hunter2@ho st:1080", "host must be a name or an IP address"),
        ("socks5://u:hunter2@host:1080/x", "takes no path"),
        ("socks5://:hunter2@host:1080", "user name is empty"),
    ],
)
def test_bad_proxy_urls_are_refused_without_repeating_them(url: str, words: str) -> None:
    with pytest.raises(ProxyUrlError, match=words) as refused:
        Proxy.parse(url)
    assert "hunter2" not in str(refused.value)


def test_a_proxy_shows_its_label_never_its_credentials() -> None:
    proxy = Proxy.parse("socks5://al%40ice:p%3Ass@Example.org:1080")
    assert (proxy.username, proxy.password) == ("al@ice", "p:ss")
    assert repr(proxy) == "Proxy(socks5://Example.org:1080)"
    assert proxy.label == "socks5://Example.org:1080"
    assert "p:ss" not in repr(proxy)
    assert Proxy.parse(proxy.url) == proxy
    assert proxy.fingerprint != Proxy.parse("socks5://al%40ice:other@Example.org:1080").fingerprint
    assert proxy.telethon()["proxy_type"] == "socks5"
    assert Proxy.parse("http://10.0.0.1:3128").telethon() == {
        "proxy_type": "http", "addr": "10.0.0.1", "port": 3128, "rdns": True
    }  # fmt: skip


async def test_a_login_through_http_connect(running_sim: SimHarness) -> None:
    """HTTP CONNECT with Basic credentials carries the whole login."""
    port = TelethonTelegram.for_simulator(running_sim.sim)
    async with http_connect_proxy() as http:
        async with port.open_client("t", proxy=Proxy.parse(http.url())) as client:
            token = await client.export_token()
            assert isinstance(token, LoginToken)
            running_sim.scan(url=token.url, user_id=42)
            with anyio.fail_after(10):
                await client.wait_scanned()
            assert await client.export_token() == LoginSuccess(42, running_sim.home_dc)


async def test_an_http_proxys_407_is_a_proxy_auth_error(running_sim: SimHarness) -> None:
    port = TelethonTelegram.for_simulator(running_sim.sim, request_timeout=5.0)
    async with http_connect_proxy() as http:
        with pytest.raises(ProxyAuthError):
            async with port.open_client("t", proxy=Proxy.parse(http.url(password="nope"))):
                pass


def test_an_mtproxy_url_keeps_its_secret_out_of_label_and_repr() -> None:
    secret = "0123456789abcdef0123456789ABCDEF"
    proxy = Proxy.parse(f"mtproxy://dd{secret}@127.0.0.1:443")
    assert (proxy.scheme, proxy.padded) == ("mtproxy", True)
    assert proxy.label == "mtproxy://127.0.0.1:443"
    assert secret.lower() not in repr(proxy) + proxy.label + proxy.fingerprint
    assert Proxy.parse(proxy.url) == proxy
    assert proxy.telethon_mtproxy() == ("127.0.0.1", 443, "dd" + secret.lower())
    other = Proxy.parse(f"mtproxy://{'1' * 32}@127.0.0.1:443")
    assert not other.padded
    assert other.fingerprint != proxy.fingerprint


@pytest.mark.slow
@pytest.mark.parametrize("padded", [False, True])
async def test_a_login_through_mtproxy(
    running_sim: SimHarness, caplog: pytest.LogCaptureFixture, *, padded: bool
) -> None:
    """Telethon's MTProxy connection (intermediate codec, randomized with a ``dd`` secret)
    carries the whole login through the test MTProxy, which saw the home DC in the init; no
    log line (Telethon's included, at DEBUG) holds the secret."""
    caplog.set_level(logging.DEBUG)
    port = TelethonTelegram.for_simulator(running_sim.sim)
    home = running_sim.home_dc
    async with mtproxy({home: running_sim.sim.dc_address(home)}) as server:
        proxy = Proxy.parse(server.url(padded=padded))
        async with port.open_client("t", proxy=proxy) as client:
            token = await client.export_token()
            assert isinstance(token, LoginToken)
            running_sim.scan(url=token.url, user_id=43)
            with anyio.fail_after(10):
                await client.wait_scanned()
            assert await client.export_token() == LoginSuccess(43, home)
    assert server.forwarded
    assert set(server.forwarded) == {home}
    assert not server.refused
    assert server.secret not in caplog.text


@pytest.mark.slow
async def test_a_wrong_mtproxy_secret_is_a_proxy_auth_error(
    running_sim: SimHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """The MTProxy closes a connection whose init another secret made: ``ProxyAuthError``,
    whose message and the log hold neither secret (and Telethon's socket is closed: the
    test fails on an unclosed-transport warning otherwise)."""
    caplog.set_level(logging.DEBUG)
    port = TelethonTelegram.for_simulator(running_sim.sim, request_timeout=5.0)
    home = running_sim.home_dc
    wrong = "f" * 32
    async with mtproxy({home: running_sim.sim.dc_address(home)}) as server:
        with pytest.raises(ProxyAuthError) as refused:
            async with port.open_client("t", proxy=Proxy.parse(server.url(wrong))):
                pass
    assert server.refused
    assert not server.forwarded
    message = str(refused.value)
    assert wrong not in message
    assert server.secret not in message
    assert f"mtproxy://127.0.0.1:{server.port}" in message
    assert wrong not in caplog.text
    assert server.secret not in caplog.text


async def test_an_mtproxy_nobody_listens_on_is_unreachable(running_sim: SimHarness) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    port = TelethonTelegram.for_simulator(running_sim.sim, request_timeout=5.0)
    with pytest.raises(ProxyUnreachableError):
        async with port.open_client(
            "t", proxy=Proxy.parse(f"mtproxy://{'a' * 32}@127.0.0.1:{free}")
        ):
            pass
