"""What the login aggregate is given: the commands of clients and the observations of its shell.

Plain frozen dataclasses; a ``Password``'s repr hides the password, a ``Succeeded``'s the session,
a ``Renew``'s and a ``Release``'s the lease's proof.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from events import DeviceInfo, Event

__all__ = [
    "Cancel",
    "Command",
    "ConfigRefused",
    "DeadlineReached",
    "Decision",
    "FloodWait",
    "Input",
    "Lease",
    "LeaseDue",
    "Logout",
    "Migrating",
    "Observation",
    "Password",
    "PasswordNeededSeen",
    "PasswordWrong",
    "ProxyDown",
    "ProxyRefused",
    "Release",
    "Renew",
    "ScanSeen",
    "SessionLost",
    "SessionRevoked",
    "Start",
    "Succeeded",
    "TelegramDown",
    "TokenExpiredOnImport",
    "TokenExported",
    "TokenRefused",
    "Validate",
]


@dataclass(frozen=True, slots=True)
class Start:
    """Command ``start``: a new attempt, or the active one (idempotent); ``force`` replaces.
    ``device``: how this tenant's client names itself (None: the service's default).
    ``proxy_url``: the tenant's own proxy (a secret, hidden from the repr; the shell seals it
    in the vault), ``proxy_label``: what the log may say of it."""

    expected_user_id: int | None = None
    ttl_s: int | None = None
    force: bool = False
    device: DeviceInfo | None = None
    proxy_url: str | None = field(default=None, repr=False)
    proxy_label: str = ""


@dataclass(frozen=True, slots=True)
class Password:
    """Command ``password``: answer ``PasswordRequired``. Its repr hides the password."""

    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Command ``cancel``: end the live attempt."""


@dataclass(frozen=True, slots=True)
class Logout:
    """Command ``logout``: log the authorized session out (the shell does it first)."""


@dataclass(frozen=True, slots=True)
class Validate:
    """Command ``validate``: check the authorized session (the shell calls ``get_me``)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Command ``lease``: hand the authorized session to ``holder`` for ``ttl_s``, sealed to
    ``public_key`` (``suite``). The shell fills in ``lease_id`` (fresh), ``fence`` (the
    tenant's head sequence, so a grant's fence exceeds every earlier one) and ``proof_digest``
    (the commitment to the proof it seals to the holder)."""

    holder: str
    public_key: bytes = field(repr=False)
    suite: str = "mlkem768-x25519"
    ttl_s: int = 300
    lease_id: str = ""
    fence: int = 0
    proof_digest: str = ""


@dataclass(frozen=True, slots=True)
class Renew:
    """Command ``renew``: extend the running lease ``lease_id`` (by its ttl, or ``ttl_s``);
    ``proof``: the lease's secret (only its holder has it). Its repr hides the proof."""

    lease_id: str
    ttl_s: int | None = None
    proof: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class Release:
    """Command ``release``: end the lease; ``revoked``: the session is dead too (log out);
    ``proof``: the lease's secret, as for :class:`Renew`. Its repr hides the proof."""

    lease_id: str
    revoked: bool = False
    proof: bytes = field(default=b"", repr=False)


Command = Start | Password | Cancel | Logout | Validate | Lease | Renew | Release


@dataclass(frozen=True, slots=True)
class TokenExported:
    """The export returned a plain token: a (new) QR to show."""

    url: str
    expires_at: datetime
    dc_id: int


@dataclass(frozen=True, slots=True)
class ScanSeen:
    """``updateLoginToken`` arrived."""


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The client is authorized as ``user_id``; ``session_fingerprint`` names its session."""

    user_id: int
    dc_id: int
    session_fingerprint: str


@dataclass(frozen=True, slots=True)
class Migrating:
    """The export answered ``LoginTokenMigrateTo``: the shell imports on ``dc_id``."""

    dc_id: int


@dataclass(frozen=True, slots=True)
class TokenExpiredOnImport:
    """The import came too late (the shell re-exports)."""


@dataclass(frozen=True, slots=True)
class PasswordNeededSeen:
    """``SESSION_PASSWORD_NEEDED``, with the account's hint."""

    hint: str = ""


@dataclass(frozen=True, slots=True)
class PasswordWrong:
    """``auth.checkPassword`` refused the password."""


@dataclass(frozen=True, slots=True)
class FloodWait:
    """Telegram asked to wait ``seconds`` before ``method``; ``random`` is U[0, 1) for jitter."""

    seconds: int
    method: str
    random: float


@dataclass(frozen=True, slots=True)
class DeadlineReached:
    """The shell's timer fired at (or after) the attempt's deadline."""


@dataclass(frozen=True, slots=True)
class TokenRefused:
    """The login token is invalid or already used."""


@dataclass(frozen=True, slots=True)
class ConfigRefused:
    """Telegram refused the service's configuration (``API_ID_INVALID``)."""


@dataclass(frozen=True, slots=True)
class TelegramDown:
    """Telegram could not be reached."""


@dataclass(frozen=True, slots=True)
class SessionRevoked:
    """The stored session is dead (``get_me`` or a restored client says so); ``noticed_by``:
    ``validation`` or ``logout`` (the call that found it)."""

    noticed_by: str = "validation"


@dataclass(frozen=True, slots=True)
class ProxyDown:
    """The tenant's proxy could not be reached."""


@dataclass(frozen=True, slots=True)
class ProxyRefused:
    """The tenant's proxy refused its user name and password."""


@dataclass(frozen=True, slots=True)
class SessionLost:
    """A resumed 2FA attempt found no pre-auth session in the vault."""


@dataclass(frozen=True, slots=True)
class LeaseDue:
    """The shell's lease timer fired, or a command arrived: end the lease if its time is up."""


Observation = (
    TokenExported
    | ScanSeen
    | Succeeded
    | Migrating
    | TokenExpiredOnImport
    | PasswordNeededSeen
    | PasswordWrong
    | FloodWait
    | DeadlineReached
    | TokenRefused
    | ConfigRefused
    | TelegramDown
    | SessionRevoked
    | SessionLost
    | ProxyDown
    | ProxyRefused
    | LeaseDue
)
Input = Command | Observation


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``decide`` answers: events to append, or a rejection ``error`` code (``extra``:
    the rejection's own fields, such as the holder of a ``leased`` session)."""

    events: tuple[Event, ...] = ()
    error: str | None = None
    message: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None
