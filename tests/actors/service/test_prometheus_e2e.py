"""A real Prometheus (Debian's, on loopback, in a temp dir) scrapes a running tgqr.

Logins succeed and expire; Prometheus' query API then returns ``auth_qr_success_total`` equal
to the successful logins, and the shipped rule ``TgqrRateLimitHitsHigh`` fires once the test
has a tenant refused more than 50 times. Waiting is on Prometheus' own API, bounded. Last,
headless Chromium shows Prometheus' table of tgqr's series; with ``TGQR_SCREENSHOTS=DIR`` the
picture is kept as ``DIR/prometheus.png`` (the README's).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx2
import pytest
from anyio.abc import Process
from playwright.async_api import async_playwright

from actors.service import NatsServer, ServiceConfig
from tests.actors.gateway.page.conftest import CHROMIUM_ARGS, chromium
from tests.deploy._tools import RULES_DIR, tool

from .conftest import Driver, driving

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LISTENING = re.compile(rb'msg="Listening on" address=(\S+)')
POLL_S = 0.2


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 20) -> None:
    """Ask Prometheus (an outside process: there is no event of ours to wait on) every
    ``POLL_S`` until ``check`` holds; fail after ``within_s``."""
    with anyio.fail_after(within_s):
        while True:
            if await check():
                return
            await anyio.sleep(POLL_S)


@dataclass
class Prometheus:
    http: httpx2.AsyncClient
    url: str

    async def query(self, promql: str) -> list[dict[str, Any]]:
        reply = await self.http.get("/api/v1/query", params={"query": promql})
        body = reply.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def value(self, promql: str) -> float | None:
        result = await self.query(promql)
        return float(result[0]["value"][1]) if result else None

    async def wait_value(self, promql: str, expected: float, within_s: float = 20) -> None:
        """Poll the query API (an outside system: there is nothing to wait on) until it
        returns ``expected``."""

        async def equal() -> bool:
            return await self.value(promql) == expected

        await until(equal, within_s)

    async def firing(self) -> set[str]:
        reply = (await self.http.get("/api/v1/alerts")).json()
        return {a["labels"]["alertname"] for a in reply["data"]["alerts"] if a["state"] == "firing"}


def write_config(directory: Path, target: str) -> Path:
    config = directory / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES_DIR / "tgqr.rules.yml")],
                "scrape_configs": [{"job_name": "tgqr", "static_configs": [{"targets": [target]}]}],
            }
        )
    )
    return config


@pytest.fixture
async def prometheus(tmp_path: Path, driver_with_metrics: Driver) -> AsyncIterator[Prometheus]:
    url = driver_with_metrics.service.metrics_url
    assert url is not None
    config = write_config(tmp_path, url.removeprefix("http://"))
    command = [
        tool("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        "--web.listen-address=127.0.0.1:0",
        "--log.level=info",
    ]
    process: Process = await anyio.open_process(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    address: list[str] = []
    found = anyio.Event()

    async def read_log() -> None:
        assert process.stderr is not None
        buffered = b""
        async for chunk in process.stderr:  # keep draining: a full pipe would stall it
            if not found.is_set():
                buffered += chunk
                if match := LISTENING.search(buffered):
                    address.append(match.group(1).decode())
                    found.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_log)
            with anyio.fail_after(20):
                await found.wait()
            async with httpx2.AsyncClient(base_url=f"http://{address[0]}", timeout=10) as http:

                async def ready() -> bool:
                    return (await http.get("/-/ready")).status_code == 200

                await until(ready)
                yield Prometheus(http, f"http://{address[0]}")
            process.terminate()
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()


@pytest.fixture
async def driver_with_metrics(
    service_config: ServiceConfig, nats_server: NatsServer
) -> AsyncIterator[Driver]:
    config = replace(service_config, metrics="127.0.0.1:0")
    async with driving(config, nats_server.url) as running:
        yield running


async def login(driver: Driver, tenant: str, user_id: int) -> None:
    assert (await driver.command(tenant, "start"))["ok"]
    await driver.wait_for(tenant, "QrIssued")
    assert (await driver.scan(tenant, user_id))["ok"]
    await driver.wait_for(tenant, "Authorized")


async def test_prometheus_sees_the_logins_and_fires_an_alert(
    driver_with_metrics: Driver, prometheus: Prometheus, tmp_path: Path
) -> None:
    """Prometheus counts exactly the logins that succeeded and expired, sees no tenant label,
    and fires the shipped rate-limit alert once a tenant is refused more than 50 times."""
    driver = driver_with_metrics
    await prometheus.wait_value('up{job="tgqr"}', 1)
    # Three logins succeed, two expire unscanned (a 1 s QR lifetime).
    async with anyio.create_task_group() as tg:
        for n, tenant in enumerate(("alice", "bob", "carol")):
            tg.start_soon(login, driver, tenant, 10 + n)
        for tenant in ("dave", "erin"):
            assert (await driver.command(tenant, "start", ttl_s=1))["ok"]
    for tenant in ("dave", "erin"):
        await driver.wait_for(tenant, "Expired")
    await prometheus.wait_value("sum(auth_qr_success_total)", 3)
    await prometheus.wait_value("sum(telethon_qr_expired_total)", 2)
    assert await prometheus.value("sum(auth_qr_start_total)") == 5
    assert await prometheus.query('{tenant!=""}') == []  # no tenant label by default

    assert "TgqrRateLimitHitsHigh" not in await prometheus.firing()
    refused = 0
    for _ in range(70):  # "start" allows 5 a minute per tenant: the rest are refused
        reply = await driver.command("mallory", "start")
        refused += not reply["ok"] and reply["error"]["code"] == "rate_limited"
    assert refused > 50
    await prometheus.wait_value('sum(telethon_rate_limit_hits_total{verb="start"})', refused)

    async def fired() -> bool:
        return "TgqrRateLimitHitsHigh" in await prometheus.firing()

    await until(fired)

    shot = await screenshot(prometheus, tmp_path)
    assert shot.stat().st_size > 10_000
    if target := os.environ.get("TGQR_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(target) / shot.name)


async def screenshot(prometheus: Prometheus, directory: Path) -> Path:
    """Prometheus' own page (Debian ships its classic UI) with tgqr's login series."""
    query = urlencode(
        {"g0.expr": '{__name__=~"auth_qr_.+|telethon_qr_expired_total"}', "g0.tab": "1"}
    )
    path = directory / "prometheus.png"
    async with async_playwright() as playwright:
        chrome = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = await chrome.new_page(viewport={"width": 1100, "height": 560})
            await page.goto(f"{prometheus.url}/classic/graph?{query}")
            rows = page.locator("td").filter(has_text="auth_qr_success_total")
            await rows.first.wait_for(timeout=20_000)
            await page.screenshot(path=str(path))
        finally:
            await chrome.close()
    return path
