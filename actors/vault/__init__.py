"""Sessions encrypted at rest: the port, its errors, the key ring, the KV store and a fake."""

from __future__ import annotations

from ._keyring import KEY_FILE_NAME, KEYS_ENV, load_key_ring
from ._kv import SESSIONS_BUCKET, KvSessionVault
from ._memory import MemorySessionVault
from ._port import (
    RotateProgress,
    SessionVault,
    Stage,
    VaultCorruptError,
    VaultEntry,
    VaultError,
    VaultKeyError,
    VaultUnavailableError,
    session_fingerprint,
)

__all__ = [
    "KEYS_ENV",
    "KEY_FILE_NAME",
    "SESSIONS_BUCKET",
    "KvSessionVault",
    "MemorySessionVault",
    "RotateProgress",
    "SessionVault",
    "Stage",
    "VaultCorruptError",
    "VaultEntry",
    "VaultError",
    "VaultKeyError",
    "VaultUnavailableError",
    "load_key_ring",
    "session_fingerprint",
]
