"""Restoring a chain of backups into an empty store: everything is read and checked first
(:mod:`._verify`), then the log is republished with every sequence it had, then the buckets.

Sequences matter beyond the log's own order: a lease's fence is the stream sequence of the
tenant's head, a ``QuarantineLifted`` names sequences, and the projections' checkpoint is a
sequence. So a restore keeps them: the stream is created with the backup's first sequence, each
message is published in order with exactly the headers it was stored with (its
``Nats-Expected-Last-Subject-Sequence`` among them, which JetStream checks again), and each
acknowledgement must name the message's own sequence, or the restore stops with an error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio
import nats.errors
import nats.js.errors

from events import ChainKey, StoragePolicy
from events.jsstorage import STREAM, ensure_bucket, stream_config

from ._chain import chain_to, list_backups
from ._errors import RestoreRefusedError
from ._key import BackupKey
from ._snapshot import stream_end
from ._targets import Target
from ._verify import Restorable, load_chain

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

__all__ = ["RestoreResult", "restore_backup", "store_holds_log"]

_log = logging.getLogger("tgqr.backup")

_WINDOW: Final = 1024
"""Publishes in flight (not yet acknowledged) during a restore."""
_ACK_TIMEOUT_S: Final = 30.0
_BUCKETS: Final = {
    "tgqr_sessions": ("TGQR_SESSIONS_MAX_BYTES", "tgqr: encrypted Telethon sessions by tenant"),
    "tgqr_leases": (
        "TGQR_LEASES_MAX_BYTES",
        "tgqr: the expiry of each tenant's renewed session lease",
    ),
}


@dataclass(frozen=True)
class RestoreResult:
    """What a restore wrote."""

    backup_id: str
    backups: int
    first_seq: int
    last_seq: int
    messages: int
    entries: dict[str, int]
    chains_checked: str


async def store_holds_log(nc: Client, stream: str = STREAM) -> bool:
    """Whether the store already holds the event stream (even an empty one)."""
    return await stream_end(nc.jetstream(), stream) is not None


async def restore_backup(
    nc: Client,
    target: Target,
    key: BackupKey,
    *,
    at: str | None = None,
    chain_key: ChainKey | None = None,
    force: bool = False,
    replicas: int = 1,
) -> RestoreResult:
    """Restore the backup ``at`` (None: the newest) from ``target`` into the store of ``nc``.

    Checks first, writes after: the store is empty (or ``force``), every backup of the chain
    authenticates and matches its checksum, the sequences join up, the hash chains hold. Only
    then are the stream (``force``: deleted first) and the buckets written.

    Raises:
        RestoreRefusedError: the store holds the log (without ``force``), or refused a write.
        BackupCorruptError, BackupKeyError, BackupNotFoundError, BackupTargetError: the
            backup failed a check or could not be read (nothing was written).
        nats.errors.Error: JetStream did not answer.
    """
    js = nc.jetstream()
    holds = await store_holds_log(nc)
    if holds and not force:
        raise RestoreRefusedError(
            f"the store already holds {STREAM}: restore into an empty store, or pass --force "
            "to replace it"
        )
    chain = chain_to(await list_backups(target, key), at)
    restorable = await load_chain(target, key, chain, chain_key)
    if holds:
        await _clear(nc)
    await _write_log(nc, restorable, replicas)
    entries: dict[str, int] = {}
    for bucket, keys in restorable.buckets.items():
        if bucket not in _BUCKETS:
            continue
        env_name, description = _BUCKETS[bucket]
        limits = getattr(StoragePolicy(), bucket.removeprefix("tgqr_"))
        if bucket == "tgqr_leases":
            limits = dataclasses.replace(limits, max_msg_size=1024)
        await ensure_bucket(
            js, bucket, limits=limits, env_name=env_name, description=description,
            replicas=replicas,
        )  # fmt: skip
        # The keys go in like the log: pipelined, each acknowledged.
        await _publish(
            nc, [(f"$KV.{bucket}.{name}", value, {}, None) for name, value in keys.items()]
        )
        entries[bucket] = len(keys)
    result = RestoreResult(
        chain[-1].id,
        len(chain),
        restorable.first_seq,
        restorable.last_seq,
        len(restorable.messages),
        entries,
        restorable.chains_checked,
    )
    _log.info("restored %s", result)
    return result


async def _clear(nc: Client) -> None:
    js = nc.jetstream()
    for name in (STREAM, *(f"KV_{b}" for b in _BUCKETS)):
        try:
            await js.delete_stream(name)
        except nats.js.errors.NotFoundError:
            continue
        except nats.errors.Error as exc:
            raise RestoreRefusedError(
                f"--force could not delete {name} ({exc!r}): the service role may not delete "
                f"streams; delete {STREAM} and the KV_tgqr_* buckets as an administrator, then "
                "restore without --force"
            ) from None


async def _write_log(nc: Client, restorable: Restorable, replicas: int) -> None:
    js = nc.jetstream()
    config = stream_config(replicas=replicas)
    if restorable.first_seq > 1:
        config = dataclasses.replace(config, first_seq=restorable.first_seq)
    try:
        await js.add_stream(config)
    except nats.js.errors.APIError as exc:
        raise RestoreRefusedError(
            f"the store refused to create {STREAM}: {exc.description}"
        ) from None
    await _publish(nc, [(m.subject, m.data, m.headers, m.seq) for m in restorable.messages])
    end = await stream_end(js, STREAM)
    if end is None or end.last != restorable.last_seq:
        raise RestoreRefusedError(
            f"the restored log ends at sequence {end.last if end else 0}, not at "
            f"{restorable.last_seq}"
        )


async def _publish(
    nc: Client, messages: list[tuple[str, bytes, dict[str, str], int | None]]
) -> None:
    """Publish ``messages`` (subject, data, headers, the sequence it must land at or None) in
    order, at most :data:`_WINDOW` unacknowledged at once.

    Raises:
        RestoreRefusedError: JetStream refused one, or did not acknowledge in time.
    """
    prefix = nc.new_inbox()
    acked = 0
    failures: list[str] = []
    progress = anyio.Event()

    async def on_ack(msg: Msg) -> None:
        nonlocal acked
        reply = json.loads(msg.data or b"{}")
        index = int(msg.subject.rsplit(".", 1)[1])
        expected = messages[index][3]
        if "error" in reply or (expected is not None and reply.get("seq") != expected):
            what = f"sequence {expected}" if expected is not None else messages[index][0]
            failures.append(f"{what}: {reply.get('error') or reply}")
        acked += 1
        progress.set()

    sub = await nc.subscribe(prefix + ".*", cb=on_ack)
    try:
        for sent, (subject, data, headers, _) in enumerate(messages, 1):
            # The headers exactly as stored (each append's own expected subject sequence among
            # them: JetStream checks it again); the ack must name the message's own sequence.
            await nc.publish(subject, data, f"{prefix}.{sent - 1}", dict(headers))
            while sent - acked >= _WINDOW and not failures:
                # A fresh event before the flush: acks that arrive during it set it.
                progress = anyio.Event()
                await nc.flush()
                with anyio.fail_after(_ACK_TIMEOUT_S):
                    await progress.wait()
            if failures:
                break
        await nc.flush()
        with anyio.move_on_after(_ACK_TIMEOUT_S):
            while acked < len(messages) and not failures:
                progress = anyio.Event()
                await progress.wait()
    except TimeoutError:
        failures.append("JetStream stopped acknowledging")
    finally:
        with anyio.CancelScope(shield=True):
            await sub.unsubscribe()
    if failures or acked < len(messages):
        reason = failures[0] if failures else f"{len(messages) - acked} publishes unacknowledged"
        raise RestoreRefusedError(f"the store refused the restored log at {reason}")
