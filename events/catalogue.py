"""The event catalogue: every fact tgqr records, as frozen msgspec Structs.

Pure module: no IO, no clock. Rules for changing it (see README, "Schema evolution"):
tags never change, field types never change, new fields get defaults, and a changed meaning
bumps ``SCHEMA_VERSION`` with an upcaster in :mod:`events.codec`. Golden samples in
``tests/events/test_codec.py`` fail on accidental changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

__all__ = [
    "BACKUPS_CHAIN",
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "SERVICE_PREFIX",
    "TELEGRAM_CHAIN",
    "ActorRestarted",
    "Authorized",
    "BackupFailed",
    "BackupTaken",
    "DeviceInfo",
    "Event",
    "EventBase",
    "Expired",
    "FloodWaited",
    "LoggedOut",
    "LoginCancelled",
    "LoginFailed",
    "LoginStarted",
    "PasswordRejected",
    "PasswordRequired",
    "QrIssued",
    "QuarantineLifted",
    "Scanned",
    "SessionLeased",
    "SessionReleased",
    "SessionRevoked",
    "TelegramDown",
    "TelegramUp",
    "is_service_chain",
]

SCHEMA_VERSION: Final = 1

SERVICE_PREFIX: Final = "_"
"""Aggregate ids starting with this are the service's own chains, never a tenant's: commands
and sessions for them are refused (``invalid_tenant``) and tenant views leave them out."""
TELEGRAM_CHAIN: Final = "_telegram"
"""The service's chain of ``TelegramDown`` / ``TelegramUp`` (subject ``tgqr.evt._telegram``)."""
BACKUPS_CHAIN: Final = "_backups"
"""The service's chain of ``BackupTaken`` / ``BackupFailed`` (subject ``tgqr.evt._backups``)."""


def is_service_chain(aggregate: str) -> bool:
    """Whether ``aggregate`` is one of the service's own chains (not a tenant)."""
    return aggregate.startswith(SERVICE_PREFIX)


class EventBase(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """The envelope every event carries.

    ``id`` (the ``Nats-Msg-Id``), ``prev`` (the chain MAC of the tenant's previous event) and
    ``kid`` (the id of the chain key that sealed it, see :mod:`events.chain`) are filled in by
    the event log when the event is sealed; leave them empty when deciding. ``trace`` is the
    W3C ``traceparent`` of the command that caused the event, if any. Events stored before key
    ids existed decode with ``kid=""``.
    """

    tenant: str
    attempt: int
    at: datetime
    v: int = SCHEMA_VERSION
    id: str = ""
    prev: str = ""
    trace: str | None = None
    kid: str = ""


class DeviceInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a tenant's Telegram client names itself (``initConnection``): what the user sees in
    Settings → Devices. An empty field takes the service's default (``TGQR_DEVICE_*``)."""

    model: str = ""
    system: str = ""
    app_version: str = ""
    lang: str = ""


class LoginStarted(EventBase, frozen=True, kw_only=True, tag="LoginStarted"):
    """A new login attempt began; it ends at ``deadline`` at the latest. ``device``: the
    tenant's own device fields from ``start`` (None: the service's defaults), used on every
    connection of this login and of the session it authorizes. ``proxy``: the tenant's own
    proxy as ``<scheme>://<host>:<port> #<fingerprint>``, never its credentials (the URL is
    sealed in the vault); ``""``: the service's (``TGQR_PROXY``) or none. Stored before these
    existed: None and ``""``."""

    expected_user_id: int | None = None
    deadline: datetime
    device: DeviceInfo | None = None
    proxy: str = ""


class QrIssued(EventBase, frozen=True, kw_only=True, tag="QrIssued"):
    """A login token was exported; ``url`` is what the QR code shows."""

    url: str
    expires_at: datetime
    dc_id: int


class Scanned(EventBase, frozen=True, kw_only=True, tag="Scanned"):
    """Telegram sent ``updateLoginToken``: a phone accepted the token."""


class PasswordRequired(EventBase, frozen=True, kw_only=True, tag="PasswordRequired"):
    """The account has 2FA; the ``password`` command is expected."""

    hint: str = ""


class PasswordRejected(EventBase, frozen=True, kw_only=True, tag="PasswordRejected"):
    """A submitted 2FA password was wrong."""

    tries_left: int


class Authorized(EventBase, frozen=True, kw_only=True, tag="Authorized"):
    """The login succeeded; the session is in the vault, only its fingerprint is here."""

    user_id: int
    dc_id: int
    session_fingerprint: str


class Expired(EventBase, frozen=True, kw_only=True, tag="Expired"):
    """The attempt reached its deadline without authorizing."""


class FloodWaited(EventBase, frozen=True, kw_only=True, tag="FloodWaited"):
    """Telegram asked to wait ``seconds``; ``retry_at`` is None when the actor gives up."""

    seconds: int
    method: str
    retry_at: datetime | None = None


class LoginFailed(EventBase, frozen=True, kw_only=True, tag="LoginFailed"):
    """The attempt ended in failure; ``reason`` is a stable code (docs/contract.md, "Events")."""

    reason: str


class LoginCancelled(EventBase, frozen=True, kw_only=True, tag="LoginCancelled"):
    """The ``cancel`` command ended a pending attempt."""


class LoggedOut(EventBase, frozen=True, kw_only=True, tag="LoggedOut"):
    """The authorized session ended: ``command`` (logout) or ``revoked`` (found dead)."""

    reason: str


class SessionRevoked(EventBase, frozen=True, kw_only=True, tag="SessionRevoked"):
    """Telegram no longer accepts the stored session: the user ended it from another device
    (Settings → Devices), or it was revoked otherwise. ``noticed_by`` says how tgqr learnt it:
    ``validation`` (the periodic check), ``logout`` (the logout call found it dead) or
    ``holder`` (the lease's holder reported it). ``LoggedOut(revoked)`` follows."""

    noticed_by: str = ""


class ActorRestarted(EventBase, frozen=True, kw_only=True, tag="ActorRestarted"):
    """The supervisor restarts the tenant's actor after ``delay_s`` (restart number ``restart``)."""

    restart: int
    delay_s: float
    error: str


class QuarantineLifted(EventBase, frozen=True, kw_only=True, tag="QuarantineLifted"):
    """An operator released the quarantined tenant: the stored messages at ``sequences`` did
    not verify and are not part of the chain (they stay in the log for the audit)."""

    sequences: tuple[int, ...]
    note: str = ""


class SessionLeased(EventBase, frozen=True, kw_only=True, tag="SessionLeased"):
    """``holder`` was granted the tenant's authorized session until ``expires_at``. ``fence``
    grows with every new lease: the tenant's stream sequence the grant was written after (see
    docs/contract.md, "Session leases").

    ``proof_digest`` commits to the lease's proof, a secret sealed to the holder alone: the
    hex SHA-256 of the secret under a domain label, the tenant and the lease id. It grants
    nothing: renew, release and revoke need the secret itself. Grants stored before proofs
    existed decode with ``""``: no proof matches them, so such a lease only expires or ends by
    logout. Renewals write no event (the owning actor keeps the later expiry in the
    ``tgqr_leases`` bucket); old logs may still hold repeated grants of one lease (renewals).
    """

    holder: str
    lease_id: str
    fence: int
    expires_at: datetime
    proof_digest: str = ""


class SessionReleased(EventBase, frozen=True, kw_only=True, tag="SessionReleased"):
    """The lease ``lease_id`` ended: ``released``, ``expired``, ``revoked`` or ``logout``."""

    lease_id: str
    reason: str


class TelegramDown(EventBase, frozen=True, kw_only=True, tag="TelegramDown"):
    """The circuit breaker of Telegram DC ``dc`` opened after ``failures`` connection failures
    in a row: new logins are refused (``unavailable``) for ``retry_after_s``, then one probe
    connects. Recorded on the service's own chain (tenant ``_telegram``, attempt 0)."""

    dc: int
    failures: int
    retry_after_s: float


class TelegramUp(EventBase, frozen=True, kw_only=True, tag="TelegramUp"):
    """DC ``dc`` answered again (a probe connected) after ``down_s`` seconds: its breaker
    closed. On the service's own chain (tenant ``_telegram``, attempt 0)."""

    dc: int
    down_s: float


class BackupTaken(EventBase, frozen=True, kw_only=True, tag="BackupTaken"):
    """An automatic backup ``backup_id`` was written (``full``, or incremental on its parent),
    covering the log's sequences ``first_seq``..``last_seq`` in ``bytes`` sealed bytes. On the
    service's own chain (tenant ``_backups``, attempt 0)."""

    backup_id: str
    full: bool
    first_seq: int
    last_seq: int
    bytes: int


class BackupFailed(EventBase, frozen=True, kw_only=True, tag="BackupFailed"):
    """An automatic backup failed with ``error`` (the kind of failure, never its details: they
    may name a bucket's credentials). On the service's own chain (``_backups``)."""

    error: str


Event = (
    LoginStarted
    | QrIssued
    | Scanned
    | PasswordRequired
    | PasswordRejected
    | Authorized
    | Expired
    | FloodWaited
    | LoginFailed
    | LoginCancelled
    | LoggedOut
    | ActorRestarted
    | QuarantineLifted
    | SessionLeased
    | SessionReleased
    | SessionRevoked
    | TelegramDown
    | TelegramUp
    | BackupTaken
    | BackupFailed
)

EVENT_TYPES: Final[dict[str, type[EventBase]]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        LoginStarted,
        QrIssued,
        Scanned,
        PasswordRequired,
        PasswordRejected,
        Authorized,
        Expired,
        FloodWaited,
        LoginFailed,
        LoginCancelled,
        LoggedOut,
        ActorRestarted,
        QuarantineLifted,
        SessionLeased,
        SessionReleased,
        SessionRevoked,
        TelegramDown,
        TelegramUp,
        BackupTaken,
        BackupFailed,
    )
}
