"""The backup key: 32 random bytes, from ``TGQR_BACKUP_KEY`` (hex) or ``<data>/backup.key``.

Its id (the first 16 hex digits of HMAC-SHA256(key, ``b"tgqr-backup-key-id"``)) is written in
clear at the start of every backup object, so a restore with another key says "wrong key"
rather than "corrupted". Like the chain key's id, it is a MAC of a fixed label and reveals no
more about the key than the sealed objects do.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from actors.keyfiles import create_key_file

from ._errors import BackupKeyError

__all__ = ["BACKUP_KEY_ENV", "BACKUP_KEY_FILE", "KEY_ID_BYTES", "BackupKey", "load_backup_key"]

BACKUP_KEY_ENV: Final = "TGQR_BACKUP_KEY"
BACKUP_KEY_FILE: Final = "backup.key"
KEY_ID_BYTES: Final = 8
_KEY_ID_LABEL: Final = b"tgqr-backup-key-id"


class BackupKey:
    """The secret key of the backups. Its ``repr`` shows its id, never the key."""

    __slots__ = ("_id", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a backup key is 32 bytes")
        self._key = key
        self._id = hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).digest()[:KEY_ID_BYTES]

    @property
    def id(self) -> bytes:
        """The key's public id (8 bytes), written in every object it seals."""
        return self._id

    @property
    def secret(self) -> bytes:
        """The key itself (for the cipher only)."""
        return self._key

    def __repr__(self) -> str:
        return f"BackupKey(id={self._id.hex()})"


def load_backup_key(
    data_dir: Path, env: Mapping[str, str] = os.environ, *, create: bool = False
) -> BackupKey:
    """``TGQR_BACKUP_KEY`` (64 hex digits), else ``data_dir/backup.key``; with ``create`` a
    missing file is made (mode 0600, a fresh key: only ``backup create`` does, since a new key
    opens no existing backup). Blocks on the file system.

    Raises:
        BackupKeyError: no key (and not ``create``), or the variable or file is malformed.
    """
    raw = env.get(BACKUP_KEY_ENV, "").strip()
    if raw:
        try:
            return BackupKey(bytes.fromhex(raw))
        except ValueError:
            raise BackupKeyError(f"{BACKUP_KEY_ENV} must be 64 hex digits (32 bytes)") from None
    path = data_dir / BACKUP_KEY_FILE
    if not path.exists():
        if not create:
            raise BackupKeyError(
                f"no backup key: {BACKUP_KEY_ENV} is not set and {path} does not exist"
            )
        create_key_file(path, secrets.token_hex(32).encode() + b"\n")
    try:
        return BackupKey(bytes.fromhex(path.read_text(encoding="utf-8").strip()))
    except (OSError, ValueError):
        raise BackupKeyError(f"cannot read the backup key file {path}") from None
