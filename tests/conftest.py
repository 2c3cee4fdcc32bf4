"""Shared fixtures: a real nats-server from the wheel on a random port with a temp store.

Also the rule that no test skips: a skip (``pytest.skip``, a ``skipif`` mark, an
``importorskip``) is reported as a failure, so a missing or broken part of our own code can
never pass as "skipped". Select tests with ``-m`` or ``-k`` instead (deselected is not skipped).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from actors.service import (
    NatsAuth,
    NatsServer,
    Role,
    RoleCredentials,
    Violations,
    connect_nats,
    ensure_credentials,
    start_nats_server,
)

NO_SKIPS = "skipped, but this project allows no skips (deselect with -m/-k instead)"


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    # A skip's longrepr is (path, line, "Skipped: reason").
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        path, line, reason = longrepr
        return f"{path}:{line}: {reason}"
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{NO_SKIPS}: {_skip_reason(report)}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = f"{NO_SKIPS}: {_skip_reason(report)}"
    return report


@pytest.fixture
def anyio_backend() -> str:
    # nats-py is asyncio-only.
    return "asyncio"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own (starts in ~30 ms): no state leaks between tests."""
    server = start_nats_server(tmp_path / "nats")
    yield server
    server.stop()


@dataclass
class AuthServer:
    """A nats-server with the shipped ``nats.conf``'s roles, and each role's credentials."""

    server: NatsServer
    data_dir: Path  # holds creds/<role>.json, as the embedded server's data directory does
    credentials: dict[Role, RoleCredentials]

    @property
    def url(self) -> str:
        return self.server.url

    def auth(self, role: Role) -> NatsAuth:
        return NatsAuth(role, credentials=self.credentials[role])

    async def connect(self, role: Role, violations: Violations | None = None) -> Client:
        """A client of ``role`` (no reconnects); its refusals land in ``violations``."""
        return await connect_nats(
            [self.url], auth=self.auth(role), reconnect=False, violations=violations
        )


@pytest.fixture
def auth_nats_server(tmp_path: Path) -> Iterator[AuthServer]:
    """A nats-server of this test's own with auth on: the roles of the shipped ``nats.conf``."""
    data = tmp_path / "auth-data"
    credentials = ensure_credentials(data)
    server = start_nats_server(tmp_path / "auth-nats", users=credentials)
    yield AuthServer(server, data, credentials)
    server.stop()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url, connect_timeout=5, max_reconnect_attempts=0)
    yield client
    await client.drain()


@pytest.fixture
async def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()
