"""Sealing backup objects: AES-256-GCM under a key derived per object from the backup key.

An object is ``MAGIC | key id (8) | salt (16) | nonce (12) | ciphertext+tag``. The object key
is HKDF-SHA256(backup key, salt, info = ``"tgqr-backup|" + name``) and the associated data is
the header plus the object's name, so an object moved to another name (another backup's data
under this backup's name, say) fails authentication like an altered one.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._errors import BackupCorruptError, BackupKeyError
from ._key import KEY_ID_BYTES, BackupKey

__all__ = ["MAGIC", "open_object", "seal_object"]

MAGIC: Final = b"TGQRBK1\n"
_SALT: Final = 16
_NONCE: Final = 12
_HEADER: Final = len(MAGIC) + KEY_ID_BYTES + _SALT + _NONCE


def _object_key(key: BackupKey, salt: bytes, name: str) -> AESGCM:
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=b"tgqr-backup|" + name.encode()
    )
    return AESGCM(hkdf.derive(key.secret))


def seal_object(key: BackupKey, name: str, plaintext: bytes) -> bytes:
    """``plaintext`` sealed for storage under ``name``."""
    salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
    header = MAGIC + key.id + salt + nonce
    return header + _object_key(key, salt, name).encrypt(nonce, plaintext, header + name.encode())


def open_object(key: BackupKey, name: str, sealed: bytes) -> bytes:
    """The plaintext of the object stored under ``name``.

    Raises:
        BackupKeyError: the object was sealed with another backup key.
        BackupCorruptError: it is not a backup object, or it was altered or moved.
    """
    if len(sealed) < _HEADER + 16 or not sealed.startswith(MAGIC):
        raise BackupCorruptError(f"{name} is not a tgqr backup object")
    kid = sealed[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES]
    if kid != key.id:
        raise BackupKeyError(
            f"{name} was sealed with backup key {kid.hex()}, not with this key "
            f"({key.id.hex()}): set TGQR_BACKUP_KEY to the key the backup was made with"
        )
    salt = sealed[len(MAGIC) + KEY_ID_BYTES : len(MAGIC) + KEY_ID_BYTES + _SALT]
    nonce = sealed[_HEADER - _NONCE : _HEADER]
    try:
        return _object_key(key, salt, name).decrypt(
            nonce, sealed[_HEADER:], sealed[:_HEADER] + name.encode()
        )
    except InvalidTag:
        raise BackupCorruptError(f"{name} is corrupted: it fails authentication") from None
