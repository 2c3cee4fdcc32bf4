"""Real parts for the page's browser tests: a running service (simulator mode, HTTP on a free
port), a plain nats-py client as the user's application, and Debian's Chromium driven by
Playwright (its own browser download does not work here: ``executable_path``).

Screenshots go to the test's tmp dir; with ``TGQR_SCREENSHOTS=DIR`` (``make screenshots``
sets ``docs``) they are also written there, under fixed names.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
import zxingcpp
from nats.aio.client import Client
from PIL import Image
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from starlette.testclient import TestClient

from actors.gateway.page import build_app
from actors.service import NatsServer, RunningService, ServiceConfig, run_service

from ._fakes import BASE, World, world

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000
MOBILE = {"width": 390, "height": 760}


def chromium() -> str:
    """Debian's Chromium, or a failure (never a skip) saying how to get it."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed: run `apt-get install -y chromium` as root "
            "(`make test` does it)",
            pytrace=False,
        )
    return path


def decode_qr(png: bytes) -> str:
    """The text of the one QR code in a screenshot."""
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1, f"{len(found)} QR codes in the screenshot"
    return found[0].text


@dataclass
class Env:
    """The service, an application's NATS client, and a browser."""

    service: RunningService
    nc: Client
    browser: Browser | None
    shots: Path
    data_dir: Path
    problems: list[str] = field(default_factory=list)

    async def request(self, subject: str, body: dict[str, Any]) -> dict[str, Any]:
        msg = await self.nc.request(subject, json.dumps(body).encode(), timeout=20)
        reply: dict[str, Any] = json.loads(msg.data)
        return reply

    async def link(self, tenant: str, **body: Any) -> str:
        reply = await self.request(f"tgqr.cmd.{tenant}.link", body)
        assert reply["ok"], reply
        return str(reply["url"])

    async def events(self, tenant: str) -> list[dict[str, Any]]:
        js = self.nc.jetstream()
        out: list[dict[str, Any]] = []
        seq = 1
        while True:
            try:
                msg = await js.get_msg(
                    "TGQR_EVENTS", seq=seq, subject=f"tgqr.evt.{tenant}", next=True
                )
            except nats.js.errors.NotFoundError:
                return out
            out.append(json.loads(msg.data or b"{}"))
            seq = (msg.seq or 0) + 1

    async def wait_for(self, tenant: str, kind: str) -> dict[str, Any]:
        """The latest event of type ``kind`` in the tenant's log, waiting for one to come."""
        sub = await self.nc.subscribe(f"tgqr.evt.{tenant}")
        try:
            with anyio.fail_after(WAIT_MS / 1000):
                for old in reversed(await self.events(tenant)):
                    if old["type"] == kind:
                        return dict(old)
                async for msg in sub.messages:
                    live: dict[str, Any] = json.loads(msg.data)
                    if live["type"] == kind:
                        return live
        finally:
            await sub.unsubscribe()
        raise AssertionError("unreachable")

    async def open(self, url: str, *, dark: bool = False, js: bool = True) -> Page:
        """A fresh phone-sized browser context on ``url``; CSP reports and page errors are
        collected in :attr:`problems`."""
        assert self.browser is not None
        context = await self.browser.new_context(
            viewport=MOBILE,  # type: ignore[arg-type]
            color_scheme="dark" if dark else "light",
            java_script_enabled=js,
        )
        page = await context.new_page()

        def console(message: ConsoleMessage) -> None:
            text = message.text
            if "Content Security Policy" in text or "Trusted Type" in text:
                self.problems.append(text)

        page.on("console", console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        await page.goto(url)
        return page

    async def shot(self, page: Page, name: str) -> None:
        """Screenshot ``page`` as ``page-<name>.png`` (see the module docstring)."""
        path = self.shots / f"page-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        target = os.environ.get("TGQR_SCREENSHOTS")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(target) / path.name)


async def wait_state(page: Page, state: str) -> None:
    await page.wait_for_selector(f'body[data-state="{state}"]', state="attached", timeout=WAIT_MS)


@asynccontextmanager
async def open_env(
    tmp_path: Path, nats_server: NatsServer, *, browser: bool = True, **config: Any
) -> AsyncIterator[Env]:
    """A service with ``config`` overrides (e.g. ``sim_token_ttl_s``), a client, a browser."""
    executable = chromium() if browser else ""
    base = ServiceConfig.from_env({}, data_dir=tmp_path / "data", nats=nats_server.url)
    service_config = replace(base, throttle_s=(0.0, 0.0), **({"http": "127.0.0.1:0"} | config))
    shots = tmp_path / "shots"
    shots.mkdir()
    async with anyio.create_task_group() as tg:
        service: RunningService = await tg.start(
            lambda task_status: run_service(service_config, task_status=task_status)
        )
        nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
        try:
            if not browser:
                yield Env(service, nc, None, shots, service_config.data_dir)
                return
            async with async_playwright() as playwright:
                chrome = await playwright.chromium.launch(
                    executable_path=executable, args=CHROMIUM_ARGS
                )
                try:
                    env = Env(service, nc, chrome, shots, service_config.data_dir)
                    yield env
                    assert not env.problems, env.problems
                finally:
                    await chrome.close()
        finally:
            await nc.drain()
            tg.cancel_scope.cancel()


@pytest.fixture
async def env(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[Env]:
    async with open_env(tmp_path, nats_server) as opened:
        yield opened


@pytest.fixture
def w() -> World:
    """The page's deps on fakes (no NATS)."""
    return world()


@pytest.fixture
def client(w: World) -> Iterator[TestClient]:
    """Starlette's test client on the page app of ``w`` (redirects not followed)."""
    with TestClient(
        build_app(w.deps), base_url=BASE, follow_redirects=False, raise_server_exceptions=False
    ) as c:
        yield c
