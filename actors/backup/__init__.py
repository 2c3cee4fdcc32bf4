"""Encrypted, incremental backups of the log and the buckets, and their restore.

A backup is a manifest and a data object, each sealed with AES-256-GCM under the backup key
(:mod:`._crypt`), in a target: a directory, S3, or a JetStream object store (:mod:`._targets`).
The first backup in a target is full; each later one holds the log's messages after its parent's
last sequence and the buckets' keys changed since. A restore reads and checks the whole chain
before it writes, and republishes the log with the sequences it had.
"""

from __future__ import annotations

from ._chain import chain_to, depends_on, list_backups, read_manifest
from ._create import BACKED_UP_BUCKETS, create_backup, prune_backups
from ._crypt import open_object, seal_object
from ._errors import (
    BackupCorruptError,
    BackupError,
    BackupKeyError,
    BackupNotFoundError,
    BackupTargetError,
    RestoreRefusedError,
)
from ._format import BucketEntry, LogMessage, Manifest, Payload, data_name, manifest_name
from ._key import BACKUP_KEY_ENV, BACKUP_KEY_FILE, BackupKey, load_backup_key
from ._loop import BackupStats, backup_once, run_backups
from ._restore import RestoreResult, restore_backup, store_holds_log
from ._settings import BackupSettings, backup_settings
from ._targets import DirectoryTarget, Target
from ._url import open_target, target_kind

__all__ = [
    "BACKED_UP_BUCKETS",
    "BACKUP_KEY_ENV",
    "BACKUP_KEY_FILE",
    "BackupCorruptError",
    "BackupError",
    "BackupKey",
    "BackupKeyError",
    "BackupNotFoundError",
    "BackupSettings",
    "BackupStats",
    "BackupTargetError",
    "BucketEntry",
    "DirectoryTarget",
    "LogMessage",
    "Manifest",
    "Payload",
    "RestoreRefusedError",
    "RestoreResult",
    "Target",
    "backup_once",
    "backup_settings",
    "chain_to",
    "create_backup",
    "data_name",
    "depends_on",
    "list_backups",
    "load_backup_key",
    "manifest_name",
    "open_object",
    "open_target",
    "prune_backups",
    "read_manifest",
    "restore_backup",
    "run_backups",
    "seal_object",
    "store_holds_log",
    "target_kind",
]
