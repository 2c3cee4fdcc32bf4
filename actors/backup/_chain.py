"""The chain of backups in a target: reading and checking manifests, and which backups one
depends on (a full backup and the incrementals after it)."""

from __future__ import annotations

import itertools

import msgspec

from ._crypt import open_object
from ._errors import BackupCorruptError, BackupNotFoundError
from ._format import FORMAT, Manifest, backup_id_of, decode_manifest, manifest_name
from ._key import BackupKey
from ._targets import Target

__all__ = ["chain_to", "depends_on", "list_backups", "read_manifest"]


async def read_manifest(target: Target, key: BackupKey, backup_id: str) -> Manifest:
    """The manifest of ``backup_id``, authenticated.

    Raises:
        BackupNotFoundError: there is no such backup.
        BackupKeyError: it was sealed with another backup key.
        BackupCorruptError: it fails authentication or does not decode.
        BackupTargetError: the target failed.
    """
    name = manifest_name(backup_id)
    plain = open_object(key, name, await target.get(name))
    try:
        manifest = decode_manifest(plain)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BackupCorruptError(f"{name} does not decode: {exc}") from None
    if manifest.format != FORMAT:
        raise BackupCorruptError(f"{name} has format {manifest.format}, this tgqr reads {FORMAT}")
    if manifest.id != backup_id:
        raise BackupCorruptError(f"{name} names backup {manifest.id}")
    return manifest


async def list_backups(target: Target, key: BackupKey) -> list[Manifest]:
    """Every backup in ``target``, oldest first (ids sort by time).

    Raises:
        BackupKeyError, BackupCorruptError, BackupTargetError: as :func:`read_manifest`.
    """
    ids = sorted(i for i in (backup_id_of(n) for n in await target.names()) if i)
    return [await read_manifest(target, key, backup_id) for backup_id in ids]


def chain_to(manifests: list[Manifest], at: str | None = None) -> list[Manifest]:
    """The backups a restore to ``at`` (None: the newest) reads, full backup first.

    Raises:
        BackupNotFoundError: no backups, or none with id ``at``.
        BackupCorruptError: a link of the chain is missing or does not join its parent.
    """
    by_id = {m.id: m for m in manifests}
    if not manifests:
        raise BackupNotFoundError("no backups there")
    if at is None:
        at = manifests[-1].id
    if at not in by_id:
        raise BackupNotFoundError(f"no backup {at!r} there")
    chain = [by_id[at]]
    while (parent := chain[-1].parent) is not None:
        if parent not in by_id:
            raise BackupCorruptError(
                f"backup {chain[-1].id} needs {parent}, which is missing: restore an earlier "
                "backup with --at, or a later full one"
            )
        chain.append(by_id[parent])
        if len(chain) > len(manifests):
            raise BackupCorruptError("the backups' parents form a loop")
    chain.reverse()
    for before, after in itertools.pairwise(chain):
        if after.first_seq != before.last_seq + 1 or after.stream != before.stream:
            raise BackupCorruptError(
                f"backup {after.id} starts at sequence {after.first_seq}, but its parent "
                f"{before.id} ends at {before.last_seq}"
            )
    return chain


def depends_on(manifests: list[Manifest], keep: int) -> set[str]:
    """The ids to keep so the newest ``keep`` backups stay restorable (they and every
    backup they are built on)."""
    by_id = {m.id: m for m in manifests}
    kept: set[str] = set()
    for manifest in manifests[-keep:] if keep > 0 else []:
        current: Manifest | None = manifest
        while current is not None and current.id not in kept:
            kept.add(current.id)
            current = by_id.get(current.parent) if current.parent else None
    return kept
