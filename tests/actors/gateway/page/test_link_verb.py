"""The ``link`` command over NATS and ``tgqr link``: answered by the command endpoint itself,
validated and rate limited like any verb, no event written; the link opens the page."""

from __future__ import annotations

import re
import sys
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import nats
import pytest

from actors.service import NatsServer, RunningService, ServiceConfig, run_service

from .conftest import open_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def page_state(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own page
        html = response.read().decode()
    found = re.search(r'<body data-state="([a-z_]+)"', html)
    assert found, html[:300]
    return found.group(1)


async def test_link_replies_and_writes_nothing(tmp_path: Path, nats_server: NatsServer) -> None:
    """``{"ok", "url", "expires_at"}``; ``ttl_s`` 1..600 (default 600); no event."""
    async with open_env(tmp_path, nats_server, browser=False) as env:
        before = datetime.now(UTC).replace(microsecond=0)
        reply = await env.request("tgqr.cmd.alice.link", {"ttl_s": 90})
        assert reply["ok"] is True
        assert env.service.page is not None
        assert reply["url"].startswith(f"{env.service.page.url}/l/")
        expires = datetime.fromisoformat(reply["expires_at"])
        assert reply["expires_at"].endswith("Z")
        assert before + timedelta(seconds=89) <= expires <= before + timedelta(seconds=91)
        default = await env.request("tgqr.cmd.alice.link", {})
        assert datetime.fromisoformat(default["expires_at"]) >= expires + timedelta(seconds=500)
        assert await env.events("alice") == []
        for body, code in [({"ttl_s": 0}, "invalid_request"), ({"ttl_s": 601}, "invalid_request"),
                           ({"surprise": 1}, "invalid_request")]:  # fmt: skip
            refused = await env.request("tgqr.cmd.alice.link", body)
            assert refused["error"]["code"] == code, refused
        bad = await env.request("tgqr.cmd.bad$tenant.link", {})
        assert bad["error"]["code"] == "invalid_tenant"


async def test_link_is_rate_limited(tmp_path: Path, nats_server: NatsServer) -> None:
    """30 links per tenant per minute (``DEFAULT_LIMITS``), like the other verbs."""
    async with open_env(tmp_path, nats_server, browser=False) as env:
        for _ in range(30):
            assert (await env.request("tgqr.cmd.bob.link", {}))["ok"]
        limited = await env.request("tgqr.cmd.bob.link", {})
        assert limited["error"]["code"] == "rate_limited"
        assert limited["error"]["retry_after_s"] > 0
        assert (await env.request("tgqr.cmd.carol.link", {}))["ok"]


async def test_without_http_there_is_no_link(tmp_path: Path, nats_server: NatsServer) -> None:
    config = replace(
        ServiceConfig.from_env({"TGQR_HTTP": "off"}, data_dir=tmp_path, nats=nats_server.url),
        throttle_s=(0.0, 0.0),
    )
    assert config.http is None
    async with anyio.create_task_group() as tg:
        service: RunningService = await tg.start(
            lambda task_status: run_service(config, task_status=task_status)
        )
        assert service.page is None
        nc = await nats.connect(nats_server.url)
        reply = await nc.request("tgqr.cmd.alice.link", b"{}", timeout=10)
        assert b'"code":"unavailable"' in reply.data
        await nc.drain()
        tg.cancel_scope.cancel()


async def test_tgqr_link_prints_a_link_that_opens_the_page(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """``tgqr link dave --ttl 60``: the URL alone on stdout; it opens the page, which (a GET,
    as a link previewer or a mail scanner would make it, three times) starts nothing."""
    async with open_env(tmp_path, nats_server, browser=False) as env:
        done = await anyio.run_process(
            [sys.executable, "-m", "actors.cli", "link", "dave", "--ttl", "60",
             "--nats", nats_server.url, "--data", str(tmp_path / "cli")],
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        url = done.stdout.decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/l/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", url)
        assert "valid until" in done.stderr.decode()
        for _ in range(3):
            assert await anyio.to_thread.run_sync(page_state, url) == "idle"
        # Each GET was answered: a start it had sent would be stored by now.
        assert await env.events("dave") == []
        bad = await anyio.run_process(
            [sys.executable, "-m", "actors.cli", "link", "dave", "--ttl", "0",
             "--nats", nats_server.url, "--data", str(tmp_path / "cli")],
            check=False,
        )  # fmt: skip
        assert bad.returncode != 0  # a usage error (the CLI says which exit code)
        assert len(bad.stderr.decode().strip().splitlines()) == 1


def page_lang(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own page
        html = response.read().decode()
    found = re.search(r'<html lang="([a-z]+)"', html)
    assert found, html[:300]
    return found.group(1)


async def test_link_carries_the_language_asked_for(tmp_path: Path, nats_server: NatsServer) -> None:
    """``{"lang": "ru"}`` signs Russian into the link (a browser naming no language gets it);
    a language the page does not speak is refused."""
    async with open_env(tmp_path, nats_server, browser=False) as env:
        russian = await env.request("tgqr.cmd.erin.link", {"lang": "ru"})
        assert await anyio.to_thread.run_sync(page_lang, russian["url"]) == "ru"
        plain = await env.request("tgqr.cmd.erin.link", {})
        assert await anyio.to_thread.run_sync(page_lang, plain["url"]) == "en"
        refused = await env.request("tgqr.cmd.erin.link", {"lang": "de"})
        assert refused["error"]["code"] == "invalid_request"
