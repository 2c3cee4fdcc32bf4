"""``tgqr backup create|list|restore``: encrypted, incremental copies of the log and the buckets.

The backup key is ``TGQR_BACKUP_KEY`` (hex) or ``<data>/backup.key`` (0600), made by the first
``backup create``; ``list`` and ``restore`` never make one. ``create`` and ``restore --nats``
connect as role ``service``. Without ``--nats``, ``restore`` needs ``tgqr up`` stopped: it takes
the data directory's lock, starts the embedded nats-server on it, restores, and stops it; so
does ``create`` when ``tgqr up`` is not running on the data directory.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from nats.aio.client import Client

from actors.backup import (
    BackupError,
    BackupKey,
    Manifest,
    RestoreResult,
    Target,
    create_backup,
    list_backups,
    load_backup_key,
    open_target,
    restore_backup,
    store_holds_log,
    target_kind,
)
from actors.service import (
    NATS_URL_FILE,
    ChainKeyMissingError,
    NatsAuth,
    NatsConnectError,
    NatsServer,
    connect_nats,
    ensure_credentials,
    load_chain_key,
    lock_data_dir,
    start_nats_server,
)
from events import ChainKey

from ._connection import EXIT_OK, CliError, connected, data_dir

__all__ = ["add_backup_commands"]


def _key(args: argparse.Namespace, *, create: bool = False) -> BackupKey:
    try:
        return load_backup_key(data_dir(args), create=create)
    except BackupError as exc:
        raise CliError(str(exc)) from None


@asynccontextmanager
async def _plain(args: argparse.Namespace) -> AsyncIterator[Client | None]:
    """A connection only when the target is the object store (directories and S3 need none)."""
    if target_kind(args.url) != "nats-object":
        yield None
        return
    async with connected(args) as nc:
        yield nc


async def cmd_backup_create(args: argparse.Namespace) -> int:
    """``backup create --to URL [--full]``: one backup of the running service's store."""
    key = _key(args, create=True)
    directory = data_dir(args)
    if args.nats or (directory / NATS_URL_FILE).exists():
        async with connected(args) as nc:
            manifest, target = await _create(args, nc, key)
    else:
        # `tgqr up` is not running here: back its store up with the embedded server started
        # for the purpose (under the directory's lock, so `tgqr up` cannot start meanwhile).
        with lock_data_dir(directory):
            async with _embedded(directory) as nc:
                manifest, target = await _create(args, nc, key)
    kind = "full" if manifest.full else f"incremental after {manifest.parent}"
    print(
        f"backup {manifest.id} ({kind}): sequences {manifest.first_seq}..{manifest.last_seq}, "
        f"{manifest.messages} messages, {manifest.entries} bucket entries, "
        f"{manifest.data_bytes} bytes, in {target.describe()}"
    )
    return EXIT_OK


async def _create(args: argparse.Namespace, nc: Client, key: BackupKey) -> tuple[Manifest, Target]:
    js = nc.jetstream(timeout=30)
    try:
        target = open_target(args.to, js=js)
        return await create_backup(js, target, key, full=args.full), target
    except BackupError as exc:
        raise CliError(str(exc)) from None


def _row(m: Manifest) -> str:
    kind = "full" if m.full else f"after {m.parent}"
    keys = ",".join(sorted(m.chain_key_ids)) or "-"
    return (
        f"{m.id}  {kind:<34} seq {m.first_seq}..{m.last_seq}  {m.messages} msgs  "
        f"{m.entries} entries  {m.data_bytes} B  chain keys {keys}  tgqr {m.tgqr_version}"
    )


async def cmd_backup_list(args: argparse.Namespace) -> int:
    """``backup list URL``: every backup there, oldest first, each with its parent."""
    key = _key(args)
    async with _plain(args) as nc:
        try:
            target = open_target(args.url, js=nc.jetstream(timeout=30) if nc else None)
            manifests = await list_backups(target, key)
        except BackupError as exc:
            raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps([_as_dict(m) for m in manifests], indent=2))
    elif not manifests:
        print(f"no backups in {target.describe()}")
    else:
        print("\n".join(_row(m) for m in manifests))
    return EXIT_OK


def _as_dict(manifest: Manifest) -> dict[str, Any]:
    import msgspec

    out: dict[str, Any] = msgspec.to_builtins(manifest)
    return out


def _chain_key(args: argparse.Namespace) -> ChainKey | None:
    try:
        return load_chain_key(data_dir(args), create=False)
    except ChainKeyMissingError:
        print("note: no chain key here: the hash chains are checked by their links only")
        return None


async def cmd_backup_restore(args: argparse.Namespace) -> int:
    """``backup restore --from URL [--at ID] [--force]``: into ``--nats``, or into the embedded
    server of ``--data`` while ``tgqr up`` is stopped."""
    key = _key(args)
    chain_key = _chain_key(args)
    if args.nats:
        async with connected(args) as nc:
            result = await _restore(args, nc, key, chain_key)
    else:
        directory = data_dir(args)
        with lock_data_dir(directory):
            result = await _restore_embedded(args, directory, key, chain_key)
    print(
        f"restored backup {result.backup_id} ({result.backups} backup(s)): sequences "
        f"{result.first_seq}..{result.last_seq}, {result.messages} messages, "
        + ", ".join(f"{n} {b}" for b, n in result.entries.items())
        + f"; chains checked: {result.chains_checked}"
    )
    return EXIT_OK


async def _restore(
    args: argparse.Namespace,
    nc: Client,
    key: Any,
    chain_key: ChainKey | None,
    *,
    force: bool | None = None,
) -> RestoreResult:
    try:
        target = open_target(args.source, js=nc.jetstream(timeout=30))
        return await restore_backup(
            nc, target, key, at=args.at, chain_key=chain_key,
            force=args.force if force is None else force,
        )  # fmt: skip
    except BackupError as exc:
        raise CliError(str(exc)) from None


@asynccontextmanager
async def _embedded(directory: Path) -> AsyncIterator[Client]:
    """The embedded nats-server on ``directory`` and a connection as role ``service``."""
    users = ensure_credentials(directory)
    server: NatsServer = await anyio.to_thread.run_sync(
        lambda: start_nats_server(directory / "nats", users=users)
    )
    try:
        try:
            nc = await connect_nats(
                [server.url], auth=NatsAuth("service", credentials=users["service"]),
                reconnect=False, connect_timeout=5,
            )  # fmt: skip
        except NatsConnectError as exc:
            raise CliError(str(exc)) from None
        try:
            yield nc
        finally:
            with anyio.CancelScope(shield=True):
                await nc.close()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)


def _set_aside(directory: Path, names: tuple[str, ...], stamp: Callable[[], float]) -> None:
    """Rename what the restore replaces to ``<name>.before-restore-<time>`` (nothing is lost)."""
    suffix = f".before-restore-{int(stamp())}"
    for name in names:
        path = directory / name
        if path.exists():
            path.rename(path.with_name(name + suffix))
            print(f"kept the previous {name} as {path.name}{suffix}")


async def _restore_embedded(
    args: argparse.Namespace, directory: Path, key: BackupKey, chain_key: ChainKey | None
) -> RestoreResult:
    async with _embedded(directory) as nc:
        holds = await store_holds_log(nc)
        if not holds or not args.force:
            # The projections of another log would be wrong: the service rebuilds them.
            result = await _restore(args, nc, key, chain_key)
            _set_aside(directory, ("tgqr.duckdb", "tgqr.duckdb.wal"), time.time)
            return result
    # --force on a store that holds a log: the service role may not delete streams, so the
    # whole embedded store is set aside (kept) and the restore starts from an empty one.
    _set_aside(directory, ("nats", "tgqr.duckdb", "tgqr.duckdb.wal"), time.time)
    async with _embedded(directory) as nc:
        return await _restore(args, nc, key, chain_key, force=False)


def add_backup_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``backup create|list|restore`` on the subcommand action ``sub``."""
    backup = sub.add_parser("backup", help="encrypted, incremental backups")
    bsub = backup.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = bsub.add_parser("create", parents=[common], help="back the log and the sessions up")
    create.add_argument(
        "--to", required=True, metavar="URL",
        help="s3://BUCKET/PREFIX, nats-object://BUCKET or a directory",
    )  # fmt: skip
    create.add_argument("--full", action="store_true", help="a full backup, not incremental")
    create.set_defaults(run=cmd_backup_create)

    listing = bsub.add_parser("list", parents=[common], help="the backups there and their chain")
    listing.add_argument("url", metavar="URL")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_backup_list)

    restore = bsub.add_parser(
        "restore", parents=[common],
        help="restore into an empty store (the embedded one: with tgqr up stopped)",
    )  # fmt: skip
    restore.add_argument("--from", dest="source", required=True, metavar="URL")
    restore.add_argument("--at", metavar="ID", help="the backup to restore (default: newest)")
    restore.add_argument(
        "--force", action="store_true",
        help="replace a store that holds a log (the embedded one is kept aside)",
    )  # fmt: skip
    restore.set_defaults(run=cmd_backup_restore)
