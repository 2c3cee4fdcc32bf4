"""The composition root: configuration, the embedded nats-server and ``run_service``."""

from __future__ import annotations

from ._config import (
    ConfigError,
    ServiceConfig,
    load_chain_key,
)
from ._natsserver import (
    NatsServer,
    NatsServerError,
    find_nats_server,
    start_nats_server,
)
from ._repair import (
    lift_quarantine,
)
from ._run import (
    NATS_URL_FILE,
    RunningService,
    connect_nats,
    run_service,
    tune_gc,
)

__all__ = [
    "NATS_URL_FILE",
    "ConfigError",
    "NatsServer",
    "NatsServerError",
    "RunningService",
    "ServiceConfig",
    "connect_nats",
    "find_nats_server",
    "lift_quarantine",
    "load_chain_key",
    "run_service",
    "start_nats_server",
    "tune_gc",
]
