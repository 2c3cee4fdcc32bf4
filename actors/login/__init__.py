"""One tenant's login: the pure aggregate (state, inputs, decide, evolve) and its actor.

The aggregate (``_state``, ``_inputs``, ``_decide``) imports no anyio, nats or telethon; the
actor (``run_actor``) is the IO shell that runs it over one mailbox.
"""

from __future__ import annotations

from ._actor import (
    run_actor,
)
from ._decide import (
    decide,
)
from ._deps import (
    ActorDeps,
)
from ._inputs import (
    Cancel,
    Command,
    ConfigRefused,
    DeadlineReached,
    Decision,
    FloodWait,
    Input,
    Lease,
    LeaseDue,
    Logout,
    Migrating,
    Observation,
    Password,
    PasswordNeededSeen,
    PasswordWrong,
    Release,
    Renew,
    ScanSeen,
    SessionLost,
    SessionRevoked,
    Start,
    Succeeded,
    TelegramDown,
    TokenExpiredOnImport,
    TokenExported,
    TokenRefused,
    Validate,
)
from ._leases import (
    LEASE_TTL_S,
    MAX_LEASE_TTL_S,
    MIN_LEASE_TTL_S,
    uses_session,
)
from ._mail import (
    CommandReply,
    Envelope,
    Mail,
    Mailbox,
    Wake,
    refuse_mail,
)
from ._state import (
    LIVE,
    MAX_TTL_S,
    TERMINAL,
    HeldLease,
    LoginState,
    Policy,
    Status,
    evolve,
    fold,
    refresh_at,
    wakeup_at,
)

__all__ = [
    "LEASE_TTL_S",
    "LIVE",
    "MAX_LEASE_TTL_S",
    "MAX_TTL_S",
    "MIN_LEASE_TTL_S",
    "TERMINAL",
    "ActorDeps",
    "Cancel",
    "Command",
    "CommandReply",
    "ConfigRefused",
    "DeadlineReached",
    "Decision",
    "Envelope",
    "FloodWait",
    "HeldLease",
    "Input",
    "Lease",
    "LeaseDue",
    "LoginState",
    "Logout",
    "Mail",
    "Mailbox",
    "Migrating",
    "Observation",
    "Password",
    "PasswordNeededSeen",
    "PasswordWrong",
    "Policy",
    "Release",
    "Renew",
    "ScanSeen",
    "SessionLost",
    "SessionRevoked",
    "Start",
    "Status",
    "Succeeded",
    "TelegramDown",
    "TokenExpiredOnImport",
    "TokenExported",
    "TokenRefused",
    "Validate",
    "Wake",
    "decide",
    "evolve",
    "fold",
    "refresh_at",
    "refuse_mail",
    "run_actor",
    "uses_session",
    "wakeup_at",
]
