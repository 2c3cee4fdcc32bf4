"""What a backup holds: its manifest and its data, as msgspec structs.

A backup is two objects: ``<id>.manifest`` (the :class:`Manifest`) and ``<id>.data`` (a
:class:`Payload`, msgpack then zlib), each sealed by :mod:`._crypt`. The manifest names its
parent (None: a full backup) and the SHA-256 of the sealed data object; a chain of backups
covers the log from its first sequence without a gap between links.
"""

from __future__ import annotations

import zlib
from typing import Final

import msgspec

__all__ = [
    "FORMAT",
    "BucketEntry",
    "LogMessage",
    "Manifest",
    "Payload",
    "backup_id_of",
    "data_name",
    "decode_manifest",
    "decode_payload",
    "encode_manifest",
    "encode_payload",
    "manifest_name",
]

FORMAT: Final = 1
_MANIFEST_SUFFIX: Final = ".manifest"
_DATA_SUFFIX: Final = ".data"


class LogMessage(msgspec.Struct, frozen=True, array_like=True):
    """One message of the event stream exactly as stored: sequence, subject, bytes, headers
    (``Nats-Msg-Id``, ``Tgqr-Mac``, ...) and the time JetStream stored it (ns)."""

    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]
    stored_ns: int


class BucketEntry(msgspec.Struct, frozen=True, array_like=True):
    """The state of one key of a bucket as of the backup: ``value`` None means deleted. Session
    values are Fernet tokens, copied as they are."""

    bucket: str
    key: str
    value: bytes | None
    seq: int


class Payload(msgspec.Struct, frozen=True):
    """A backup's data: the log's messages after the parent's last sequence, and the keys of
    each bucket changed since the parent."""

    messages: list[LogMessage]
    entries: list[BucketEntry]


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a backup holds, how it joins its parent, and how to check its data."""

    format: int = FORMAT
    id: str
    parent: str | None
    created_at: str
    tgqr_version: str
    stream: str
    first_seq: int
    """The first stream sequence this backup covers (the parent's ``last_seq`` + 1)."""
    last_seq: int
    """The stream's last sequence when the backup was taken (0: empty)."""
    last_mac: str
    """``Tgqr-Mac`` of the message at ``last_seq`` (an incremental checks the store still
    holds the same log)."""
    messages: int
    buckets: dict[str, int]
    """Per bucket, the last sequence of its stream covered."""
    entries: int
    chain_key_ids: dict[str, int]
    """How many of this backup's events name each chain key id (never a key)."""
    data_sha256: str
    data_bytes: int

    @property
    def full(self) -> bool:
        return self.parent is None


_manifest_decoder: Final = msgspec.json.Decoder(Manifest)
_payload_decoder: Final = msgspec.msgpack.Decoder(Payload)
_json: Final = msgspec.json.Encoder()
_msgpack: Final = msgspec.msgpack.Encoder()


def manifest_name(backup_id: str) -> str:
    return backup_id + _MANIFEST_SUFFIX


def data_name(backup_id: str) -> str:
    return backup_id + _DATA_SUFFIX


def backup_id_of(name: str) -> str | None:
    """The backup id of a manifest's object name (None: not a manifest)."""
    return name.removesuffix(_MANIFEST_SUFFIX) if name.endswith(_MANIFEST_SUFFIX) else None


def encode_manifest(manifest: Manifest) -> bytes:
    return _json.encode(manifest)


def decode_manifest(data: bytes) -> Manifest:
    """Raises: msgspec.DecodeError / msgspec.ValidationError."""
    return _manifest_decoder.decode(data)


def encode_payload(payload: Payload) -> bytes:
    return zlib.compress(_msgpack.encode(payload), 6)


def decode_payload(data: bytes) -> Payload:
    """Raises: zlib.error, msgspec.DecodeError / msgspec.ValidationError."""
    return _payload_decoder.decode(zlib.decompress(data))
