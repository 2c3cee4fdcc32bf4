"""tgqr events: the catalogue, its codec, the hash chain and the EventLog port.

Depends on nothing else of tgqr. Only the JetStream adapter (:mod:`events.jetstream`, with
:mod:`events.jsstorage` for the stores' configuration and limits) imports nats.
"""

from __future__ import annotations

from ._plain import plain_decode_error
from ._tenant import (
    EVENT_SUBJECT_PREFIX,
    EVENT_SUBJECT_WILDCARD,
    InvalidTenantError,
    event_subject,
    tenant_of_subject,
    validate_tenant,
)
from .catalogue import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    ActorRestarted,
    Authorized,
    DeviceInfo,
    Event,
    EventBase,
    Expired,
    FloodWaited,
    LoggedOut,
    LoginCancelled,
    LoginFailed,
    LoginStarted,
    PasswordRejected,
    PasswordRequired,
    QrIssued,
    QuarantineLifted,
    Scanned,
    SessionLeased,
    SessionReleased,
    SessionRevoked,
)
from .chain import MAC_HEADER, ChainKey, Head, Sealed, seal
from .codec import current_json, decode_event, encode_event
from .errors import (
    ConcurrencyConflictError,
    EventLogError,
    EventLogFullError,
    EventLogUnavailableError,
    EventTooLargeError,
    StorageLimitError,
    TenantQuarantinedError,
    UndecodableEventError,
)
from .inbox import ReplyGuard, is_inbox
from .log import MAX_CHUNK, ChainedLog, EventLog, Record, StoredMessage, Undecodable, decode_stored
from .memory import MemoryEventLog
from .quarantine import BadMessage, TenantLog, check_tenant
from .storage import FILL_WARNING, StorageLimits, StoragePolicy, StorageUse, storage_warning
from .verify import ChainBreak, ChainVerifier, VerifyReport, verify_log, verify_tail

__all__ = [
    "EVENT_SUBJECT_PREFIX",
    "EVENT_SUBJECT_WILDCARD",
    "EVENT_TYPES",
    "FILL_WARNING",
    "MAC_HEADER",
    "MAX_CHUNK",
    "SCHEMA_VERSION",
    "ActorRestarted",
    "Authorized",
    "BadMessage",
    "ChainBreak",
    "ChainKey",
    "ChainVerifier",
    "ChainedLog",
    "ConcurrencyConflictError",
    "DeviceInfo",
    "Event",
    "EventBase",
    "EventLog",
    "EventLogError",
    "EventLogFullError",
    "EventLogUnavailableError",
    "EventTooLargeError",
    "Expired",
    "FloodWaited",
    "Head",
    "InvalidTenantError",
    "LoggedOut",
    "LoginCancelled",
    "LoginFailed",
    "LoginStarted",
    "MemoryEventLog",
    "PasswordRejected",
    "PasswordRequired",
    "QrIssued",
    "QuarantineLifted",
    "Record",
    "ReplyGuard",
    "Scanned",
    "Sealed",
    "SessionLeased",
    "SessionReleased",
    "SessionRevoked",
    "StorageLimitError",
    "StorageLimits",
    "StoragePolicy",
    "StorageUse",
    "StoredMessage",
    "TenantLog",
    "TenantQuarantinedError",
    "Undecodable",
    "UndecodableEventError",
    "VerifyReport",
    "check_tenant",
    "current_json",
    "decode_event",
    "decode_stored",
    "encode_event",
    "event_subject",
    "is_inbox",
    "plain_decode_error",
    "seal",
    "storage_warning",
    "tenant_of_subject",
    "validate_tenant",
    "verify_log",
    "verify_tail",
]
