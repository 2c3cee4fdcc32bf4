"""The backup package's errors: one base, and a subclass for each thing a caller tells apart."""

from __future__ import annotations

__all__ = [
    "BackupCorruptError",
    "BackupError",
    "BackupKeyError",
    "BackupNotFoundError",
    "BackupTargetError",
    "RestoreRefusedError",
]


class BackupError(Exception):
    """Base of the errors below; its message is one line for the operator, never a secret."""


class BackupTargetError(BackupError):
    """Raised when the backup URL cannot be used, or the storage behind it fails or refuses."""


class BackupNotFoundError(BackupError):
    """Raised when the target holds no backup (or none with the id asked for)."""


class BackupKeyError(BackupError):
    """Raised when the backup key is missing, malformed, or not the key a backup was sealed
    with (told apart from corruption by the key id every object names)."""


class BackupCorruptError(BackupError):
    """Raised when a backup does not check: an object fails authentication or its checksum, a
    chain link is missing, the log's sequences do not join up, or a hash chain breaks."""


class RestoreRefusedError(BackupError):
    """Raised when a restore would overwrite a store that already holds the log (without
    ``force``), or the store refuses what the restore must write."""
