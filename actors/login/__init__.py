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
    Logout,
    Migrating,
    Observation,
    Password,
    PasswordNeededSeen,
    PasswordWrong,
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
from ._mail import (
    CommandReply,
    Envelope,
    Mail,
    Mailbox,
    refuse_mail,
)
from ._state import (
    LIVE,
    MAX_TTL_S,
    TERMINAL,
    LoginState,
    Policy,
    Status,
    evolve,
    fold,
    refresh_at,
    wakeup_at,
)

__all__ = [
    "LIVE",
    "MAX_TTL_S",
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
    "Input",
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
    "decide",
    "evolve",
    "fold",
    "refresh_at",
    "refuse_mail",
    "run_actor",
    "wakeup_at",
]
