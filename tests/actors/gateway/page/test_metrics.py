"""The page process's own /metrics, scraped over real HTTP from the page a service runs."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.service import NatsServer

from .conftest import open_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_the_page_serves_its_counts_and_process_figures(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """``GET /metrics`` on the page's port: its open connections (this one included) and
    process figures, with the page's security headers; no tenant or link in it."""
    async with open_env(tmp_path, nats_server, browser=False) as env:
        assert env.service.page is not None
        link = await env.link("alice")
        async with httpx2.AsyncClient(base_url=env.service.page.url, timeout=10) as http:
            assert (
                await http.get(link.removeprefix(env.service.page.public_url))
            ).status_code == 200
            reply = await http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "default-src" in reply.headers["content-security-policy"]
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }
    assert values["tgqr_page_connections"] >= 1
    assert values["tgqr_page_connections_refused_total"] == 0
    assert values["tgqr_page_streams"] == 0
    assert values["process_resident_memory_bytes"] > 0
    assert "alice" not in reply.text
    assert "/l/" not in reply.text
