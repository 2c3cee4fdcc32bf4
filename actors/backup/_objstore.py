"""Backups in a JetStream object store (``nats-object://BUCKET``), on the service's own NATS.

Writes go through nats-py's object store (chunked, SHA-256 digest in the object's meta). Reads
and listings are done here, naming the stream in every request: nats-py's own ``get`` and
``list`` look the stream up with ``$JS.API.STREAM.NAMES``, which the service role may not use.
Deleting marks the object deleted (its meta, rolled up); the chunks stay until a user that may
purge streams purges ``OBJ_<bucket>`` (the service role may not: it never purges).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Final

import anyio
import nats.errors
import nats.js.errors
from nats.js import api
from nats.js.object_store import ObjectStore

from ._errors import BackupNotFoundError, BackupTargetError
from ._targets import check_name

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = ["NatsObjectTarget"]

_FAILURES: Final = (nats.errors.Error, OSError)
_READ_TIMEOUT_S: Final = 30.0


class NatsObjectTarget:
    """Objects in the JetStream object store ``bucket`` (created on first write)."""

    def __init__(self, js: JetStreamContext, bucket: str) -> None:
        self._js = js
        self._bucket = bucket
        self._stream = f"OBJ_{bucket}"

    def __repr__(self) -> str:
        return f"NatsObjectTarget({self._bucket!r})"

    def describe(self) -> str:
        return f"nats-object://{self._bucket}"

    def _meta_subject(self, name: str) -> str:
        encoded = base64.urlsafe_b64encode(name.encode()).decode()
        return f"$O.{self._bucket}.M.{encoded}"

    async def _store(self, *, create: bool) -> ObjectStore | None:
        try:
            await self._js.stream_info(self._stream)
        except nats.js.errors.NotFoundError:
            if not create:
                return None
            config = api.ObjectStoreConfig(
                bucket=self._bucket,
                description="tgqr: encrypted backups",
                storage=api.StorageType.FILE,
            )
            return await self._js.create_object_store(self._bucket, config=config)
        return ObjectStore(self._bucket, self._stream, self._js)

    async def put(self, name: str, data: bytes) -> None:
        try:
            store = await self._store(create=True)
            assert store is not None  # noqa: S101 (create=True makes it)
            await store.put(check_name(name), data)
        except _FAILURES as exc:
            raise BackupTargetError(
                f"write of {name} in {self.describe()} failed: {exc!r}"
            ) from None

    async def _info(self, name: str) -> api.ObjectInfo | None:
        try:
            msg = await self._js.get_last_msg(self._stream, self._meta_subject(name))
        except nats.js.errors.NotFoundError:
            return None
        info = api.ObjectInfo.from_response(json.loads(msg.data or b"{}"))
        return None if info.deleted else info

    async def get(self, name: str) -> bytes:
        check_name(name)
        try:
            info = await self._info(name)
            if info is None:
                raise BackupNotFoundError(f"{self.describe()} holds no {name}")
            data = await self._chunks(info) if info.size else b""
        except _FAILURES as exc:
            raise BackupTargetError(
                f"read of {name} in {self.describe()} failed: {exc!r}"
            ) from None
        digest = "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
        if len(data) != info.size or digest.upper() != (info.digest or "").upper():
            raise BackupTargetError(f"{name} in {self.describe()} does not match its digest")
        return data

    async def _chunks(self, info: api.ObjectInfo) -> bytes:
        parts: list[bytes] = []
        done = anyio.Event()

        async def deliver(msg: Msg) -> None:
            parts.append(msg.data)
            if len(parts) >= (info.chunks or 0):
                done.set()

        sub = await self._js.subscribe(
            f"$O.{self._bucket}.C.{info.nuid}",
            stream=self._stream,
            cb=deliver,
            ordered_consumer=True,
            inactive_threshold=5.0,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        try:
            with anyio.fail_after(_READ_TIMEOUT_S):
                await done.wait()
        except TimeoutError:
            raise BackupTargetError(
                f"{info.name} in {self.describe()}: its chunks did not arrive in time"
            ) from None
        finally:
            with anyio.CancelScope(shield=True):
                await sub.unsubscribe()
        return b"".join(parts)

    async def names(self) -> list[str]:
        try:
            store = await self._store(create=False)
            if store is None:
                return []
            state = await self._js.stream_info(
                self._stream, subjects_filter=f"$O.{self._bucket}.M.>"
            )
            found: list[str] = []
            for subject in state.state.subjects or {}:
                msg = await self._js.get_last_msg(self._stream, subject)
                info = api.ObjectInfo.from_response(json.loads(msg.data or b"{}"))
                if not info.deleted and info.name:
                    found.append(info.name)
        except _FAILURES as exc:
            raise BackupTargetError(f"listing of {self.describe()} failed: {exc!r}") from None
        return found

    async def delete(self, name: str) -> None:
        check_name(name)
        try:
            info = await self._info(name)
            if info is None:
                return
            info.deleted, info.size, info.chunks, info.digest = True, 0, 0, ""
            await self._js.publish(
                self._meta_subject(name),
                json.dumps(info.as_dict()).encode(),
                stream=self._stream,
                headers={api.Header.ROLLUP: "sub"},
            )
        except _FAILURES as exc:
            raise BackupTargetError(
                f"deletion of {name} in {self.describe()} failed: {exc!r}"
            ) from None
