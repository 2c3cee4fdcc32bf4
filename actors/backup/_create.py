"""Taking a backup: the log's messages since the last backup, the buckets' changes, a manifest;
each sealed under the backup key and written data first, manifest last (a backup exists only
once it is whole)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Final

import msgspec
import nats.js.errors

from events import EVENT_SUBJECT_WILDCARD, MAC_HEADER
from events.jsstorage import STREAM

from ._chain import depends_on, list_backups
from ._crypt import seal_object
from ._errors import BackupError
from ._format import Manifest, Payload, data_name, encode_manifest, encode_payload, manifest_name
from ._key import BackupKey
from ._snapshot import read_bucket, read_messages, stream_end
from ._targets import Target

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["BACKED_UP_BUCKETS", "create_backup", "prune_backups"]

_log = logging.getLogger("tgqr.backup")

BACKED_UP_BUCKETS: Final = ("tgqr_sessions", "tgqr_leases")
"""The buckets a backup copies: the sealed sessions and the leases' durable expiries (the
dedupe bucket lives two minutes; the instances' ownership is live state)."""


class _Kid(msgspec.Struct):
    kid: str = ""


_kid_decoder: Final = msgspec.json.Decoder(_Kid)


def _kid_of(data: bytes) -> str:
    try:
        return _kid_decoder.decode(data).kid
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


def _version() -> str:
    try:
        return metadata.version("tgqr")
    except metadata.PackageNotFoundError:  # pragma: no cover (a source checkout)
        return "unknown"


def _now() -> datetime:
    return datetime.now(UTC)


async def _joins(js: JetStreamContext, parent: Manifest, stream: str, last: int) -> bool:
    """Whether the store still holds the log ``parent`` ended with."""
    if parent.stream != stream or parent.last_seq > last:
        return False
    if parent.last_seq == 0:
        return True
    try:
        msg = await js.get_msg(stream, seq=parent.last_seq)
    except nats.js.errors.NotFoundError:
        return False
    mac: str = (msg.headers or {}).get(MAC_HEADER, "")
    return mac == parent.last_mac


async def create_backup(
    js: JetStreamContext,
    target: Target,
    key: BackupKey,
    *,
    full: bool = False,
    stream: str = STREAM,
    buckets: Sequence[str] = BACKED_UP_BUCKETS,
    clock: Callable[[], datetime] = _now,
) -> Manifest:
    """Back the log and ``buckets`` up into ``target``: incremental after the newest backup
    there, unless ``full``, there is none, or the store no longer holds the log that backup
    ended with (a restored or replaced store starts a new chain).

    Raises:
        BackupError: there is no log to back up, or a read stalled.
        BackupKeyError: the target holds backups sealed with another key.
        BackupTargetError: the target failed.
        nats.errors.Error: JetStream refused or did not answer.
    """
    end = await stream_end(js, stream)
    if end is None:
        raise BackupError(f"there is no stream {stream} to back up")
    existing = await list_backups(target, key)
    parent = None if full or not existing else existing[-1]
    if parent is not None and not await _joins(js, parent, stream, end.last):
        _log.warning(
            "backup: the store no longer holds the log backup %s ended with: a full backup",
            parent.id,
        )
        parent = None
    start = parent.last_seq + 1 if parent else max(end.first, 1)
    messages = await read_messages(js, stream, EVENT_SUBJECT_WILDCARD, start, end.last)
    entries = []
    bucket_seqs: dict[str, int] = {}
    for bucket in buckets:
        since = parent.buckets.get(bucket, 0) + 1 if parent else 1
        found, last = await read_bucket(js, bucket, since)
        if parent and last < since - 1:  # the bucket was replaced: copy it whole
            found, last = await read_bucket(js, bucket, 1)
        entries.extend(found)
        bucket_seqs[bucket] = last
    kids = Counter(_kid_of(m.data) for m in messages)
    kids.pop("", None)
    created = clock()
    backup_id = f"{created:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(2)}"
    data = seal_object(key, data_name(backup_id), encode_payload(Payload(messages, entries)))
    last_mac = messages[-1].headers.get(MAC_HEADER, "") if messages else ""
    manifest = Manifest(
        id=backup_id,
        parent=parent.id if parent else None,
        created_at=created.isoformat(),
        tgqr_version=_version(),
        stream=stream,
        first_seq=start,
        last_seq=max(end.last, start - 1),
        last_mac=last_mac if messages else (parent.last_mac if parent else ""),
        messages=len(messages),
        buckets=bucket_seqs,
        entries=len(entries),
        chain_key_ids=dict(kids),
        data_sha256=hashlib.sha256(data).hexdigest(),
        data_bytes=len(data),
    )
    await target.put(data_name(backup_id), data)
    name = manifest_name(backup_id)
    await target.put(name, seal_object(key, name, encode_manifest(manifest)))
    _log.info(
        "backup %s written to %s: %s, sequences %d..%d, %d messages, %d bucket entries, %d bytes",
        backup_id,
        target.describe(),
        "full" if parent is None else f"after {parent.id}",
        start,
        manifest.last_seq,
        len(messages),
        len(entries),
        len(data),
    )
    return manifest


async def prune_backups(target: Target, key: BackupKey, keep: int) -> list[str]:
    """Delete the backups that the newest ``keep`` do not depend on; the ids deleted.

    Raises:
        BackupKeyError, BackupCorruptError, BackupTargetError: as listing does.
    """
    manifests = await list_backups(target, key)
    kept = depends_on(manifests, keep)
    deleted: list[str] = []
    for manifest in manifests:
        if manifest.id not in kept:
            # The manifest first: a backup without one is not listed, so never half there.
            await target.delete(manifest_name(manifest.id))
            await target.delete(data_name(manifest.id))
            deleted.append(manifest.id)
    return deleted
