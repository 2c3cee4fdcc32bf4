"""The CLI's tests drive a running service as the service's own tests do."""

from __future__ import annotations

from tests.actors.service.conftest import driver, service_config

__all__ = ["driver", "service_config"]
