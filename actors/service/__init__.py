"""The composition root: configuration, the embedded nats-server and ``run_service``."""

from __future__ import annotations

from ._auth import (
    CREDS_DIR,
    INBOX_PREFIX,
    ROLES,
    NatsAuth,
    Role,
    RoleCredentials,
    ensure_credentials,
    read_credentials,
    redact_url,
    resolve_auth,
)
from ._config import (
    CHAIN_KEY_ENV,
    CHAIN_KEY_FILE,
    ChainKeyMissingError,
    ConfigError,
    ServiceConfig,
    load_chain_key,
)
from ._connect import (
    NatsConnectError,
    Violations,
    connect_nats,
    requires_auth,
)
from ._lock import (
    DataDirLockedError,
    lock_data_dir,
)
from ._nats import (
    NATS_URL_FILE,
)
from ._natsserver import (
    NatsServer,
    NatsServerError,
    child_environment,
    derive_config,
    find_nats_server,
    start_nats_server,
)
from ._page import (
    PageProcess,
    page_environment,
)
from ._page_main import (
    PageOptions,
    run_page,
)
from ._preflight import (
    PermissionMissingError,
)
from ._repair import (
    QuarantineChangedError,
    lift_quarantine,
)
from ._run import (
    RunningService,
    run_service,
    tune_gc,
)

__all__ = [
    "CHAIN_KEY_ENV",
    "CHAIN_KEY_FILE",
    "CREDS_DIR",
    "INBOX_PREFIX",
    "NATS_URL_FILE",
    "ROLES",
    "ChainKeyMissingError",
    "ConfigError",
    "DataDirLockedError",
    "NatsAuth",
    "NatsConnectError",
    "NatsServer",
    "NatsServerError",
    "PageOptions",
    "PageProcess",
    "PermissionMissingError",
    "QuarantineChangedError",
    "Role",
    "RoleCredentials",
    "RunningService",
    "ServiceConfig",
    "Violations",
    "child_environment",
    "connect_nats",
    "derive_config",
    "ensure_credentials",
    "find_nats_server",
    "lift_quarantine",
    "load_chain_key",
    "lock_data_dir",
    "page_environment",
    "read_credentials",
    "redact_url",
    "requires_auth",
    "resolve_auth",
    "run_page",
    "run_service",
    "start_nats_server",
    "tune_gc",
]
