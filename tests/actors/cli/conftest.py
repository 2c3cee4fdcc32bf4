"""The CLI's tests drive a running service as the service's own tests do, or run ``tgqr up``
itself (its embedded nats-server with auth) in a child process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.actors.service.conftest import driver, service_config

from ._children import Up

__all__ = ["driver", "service_config", "up"]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Up, Path]]:
    """``tgqr up --data <tmp>/data``, ready; stopped (Ctrl-C) at the end."""
    data = tmp_path / "data"
    first = Up(data)
    try:
        first.ready()
        yield first, data
    finally:
        first.close()
