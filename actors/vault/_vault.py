"""The session vault: Telethon session strings, encrypted at rest, keyed by tenant.

A value is the Fernet token (``MultiFernet``, newest key first) of a small JSON document
``{"tenant", "stage", "session"}``; the tenant inside the token stops a value copied under another
tenant's key from being accepted. :class:`KvSessionVault` stores the tokens in the JetStream KV
bucket ``tgqr_sessions``; :class:`MemorySessionVault` is its verified fake (it encrypts too, so
rotation and wrong keys behave the same). Session strings and keys never appear in a log line,
an error message or a repr.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol

import anyio.lowlevel
import msgspec
import nats.errors
import nats.js.errors
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from events import validate_tenant

__all__ = [
    "KEYS_ENV",
    "KEY_FILE_NAME",
    "SESSIONS_BUCKET",
    "KvSessionVault",
    "MemorySessionVault",
    "SessionVault",
    "Stage",
    "VaultCorruptError",
    "VaultEntry",
    "VaultError",
    "VaultKeyError",
    "VaultUnavailableError",
    "load_key_ring",
    "session_fingerprint",
]

_log = logging.getLogger(__name__)

Stage = Literal["pre_auth", "authorized"]
SESSIONS_BUCKET: Final = "tgqr_sessions"
KEYS_ENV: Final = "TGQR_VAULT_KEYS"
KEY_FILE_NAME: Final = "vault.key"


class VaultError(Exception):
    """Base class of every error the vault raises."""


class VaultKeyError(VaultError):
    """Raised when the configured keys are missing or invalid, or cannot decrypt a stored value.

    The message names the tenant (or the key source) but never holds key material or a session.
    """


class VaultCorruptError(VaultError):
    """Raised when a value decrypts but is not a session document of the tenant it is stored under.

    Only a holder of the key can produce such a value: a bug, or a value moved between tenants.
    """


class VaultUnavailableError(VaultError):
    """Raised when the backing store does not answer (timeouts, no responders, 503, closed)."""


@dataclass(frozen=True, slots=True)
class VaultEntry:
    """A stored session; its repr and str show the stage only, never the session."""

    session: str = field(repr=False)
    stage: Stage


class SessionVault(Protocol):
    """Where the actors keep their tenants' Telethon sessions.

    Every method may block on the store and raises :class:`VaultUnavailableError` when it does
    not answer; tenant ids are validated (``InvalidTenantError``).
    """

    async def put(self, tenant: str, session: str, *, stage: Stage) -> None:
        """Store ``tenant``'s session (replacing any), encrypted with the newest key."""
        ...

    async def get(self, tenant: str) -> VaultEntry | None:
        """The stored session, or None. Raises VaultKeyError, VaultCorruptError."""
        ...

    async def delete(self, tenant: str) -> None:
        """Forget ``tenant``'s session; deleting a missing one is not an error."""
        ...

    async def tenants(self) -> list[str]:
        """The tenants with a stored session, sorted."""
        ...

    async def rotate(self) -> int:
        """Re-encrypt every entry with the newest key; returns how many were re-encrypted.

        Raises VaultKeyError (and changes nothing more) at the first entry no key decrypts.
        """
        ...


def session_fingerprint(session: str) -> str:
    """A short, stable, non-reversible id of a session (for ``Authorized.session_fingerprint``)."""
    return hashlib.sha256(session.encode()).hexdigest()[:16]


def load_key_ring(data_dir: Path, env: Mapping[str, str] = os.environ) -> MultiFernet:
    """The vault's key ring, newest key first.

    From ``TGQR_VAULT_KEYS`` (comma-separated Fernet keys, newest first) when set; otherwise from
    ``data_dir/vault.key`` (one key per line, newest first), which is created with mode 0600 and a
    fresh key when missing. Creation is atomic: concurrent callers all end up with the same key.
    Blocks on the file system.

    Raises:
        VaultKeyError: a key is not a valid Fernet key, or the key file holds none.
    """
    configured = env.get(KEYS_ENV, "").strip()
    if configured:
        return _ring(configured.split(","), KEYS_ENV)
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        _create_key_file(path)
    elif path.stat().st_mode & 0o077:
        _log.warning("vault key file %s is readable by others; chmod 600 it", path)
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    return _ring(lines, f"key file {path}")


def _ring(candidates: list[str], source: str) -> MultiFernet:
    keys: list[Fernet] = []
    for index, candidate in enumerate((c.strip() for c in candidates if c.strip()), start=1):
        try:
            keys.append(Fernet(candidate))
        except (ValueError, TypeError):
            # `from None`: the underlying error must not drag key bytes into a traceback.
            raise VaultKeyError(
                f"{source}: key {index} is not a valid Fernet key "
                "(expected 32 url-safe base64-encoded bytes)"
            ) from None
    if not keys:
        raise VaultKeyError(f"{source} holds no key")
    return MultiFernet(keys)


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, Fernet.generate_key() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # A hard link never replaces an existing file: whoever links first wins, the rest reuse.
        path.hardlink_to(tmp)
    except FileExistsError:
        pass
    else:
        _log.info("created vault key file %s", path)
    finally:
        tmp.unlink()


class _Doc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tenant: str
    stage: Stage
    session: str

    def __repr__(self) -> str:
        return f"_Doc(tenant={self.tenant!r}, stage={self.stage!r})"


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(_Doc)


def _seal(keys: MultiFernet, tenant: str, session: str, stage: Stage) -> bytes:
    return keys.encrypt(_encoder.encode(_Doc(tenant=tenant, stage=stage, session=session)))


def _open(keys: MultiFernet, tenant: str, token: bytes) -> VaultEntry:
    try:
        plain = keys.decrypt(token)
    except InvalidToken:
        raise VaultKeyError(
            f"cannot decrypt the session of tenant {tenant!r} with the configured keys"
        ) from None
    try:
        doc = _decoder.decode(plain)
    except msgspec.DecodeError:
        raise VaultCorruptError(f"the stored session of tenant {tenant!r} is malformed") from None
    if doc.tenant != tenant:
        raise VaultCorruptError(f"the stored session under {tenant!r} belongs to another tenant")
    return VaultEntry(session=doc.session, stage=doc.stage)


def _rotate(keys: MultiFernet, tenant: str, token: bytes) -> bytes:
    try:
        return keys.rotate(token)
    except InvalidToken:
        raise VaultKeyError(
            f"cannot decrypt the session of tenant {tenant!r} with the configured keys"
        ) from None


class MemorySessionVault:
    """An in-process vault holding the same tokens the KV adapter would.

    ``store`` (tenant -> token) may be shared between instances to model one bucket opened with
    different key rings. Each method is a checkpoint and never blocks otherwise.
    """

    def __init__(
        self, keys: MultiFernet, *, store: MutableMapping[str, bytes] | None = None
    ) -> None:
        self._keys = keys
        self._store: MutableMapping[str, bytes] = {} if store is None else store

    def __repr__(self) -> str:
        return f"MemorySessionVault(entries={len(self._store)})"

    async def put(self, tenant: str, session: str, *, stage: Stage) -> None:
        await anyio.lowlevel.checkpoint()
        validate_tenant(tenant)
        self._store[tenant] = _seal(self._keys, tenant, session, stage)

    async def get(self, tenant: str) -> VaultEntry | None:
        await anyio.lowlevel.checkpoint()
        token = self._store.get(validate_tenant(tenant))
        return None if token is None else _open(self._keys, tenant, token)

    async def delete(self, tenant: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._store.pop(validate_tenant(tenant), None)

    async def tenants(self) -> list[str]:
        await anyio.lowlevel.checkpoint()
        return sorted(self._store)

    async def rotate(self) -> int:
        await anyio.lowlevel.checkpoint()
        count = 0
        for tenant in sorted(self._store):
            self._store[tenant] = _rotate(self._keys, tenant, self._store[tenant])
            count += 1
        return count


_UNAVAILABLE: Final = (nats.errors.Error, OSError)


class KvSessionVault:
    """The vault on a JetStream KV bucket (history 1, leader reads: read-after-write consistent).

    Create it with :meth:`open`. Every method awaits JetStream requests (each bounded by the
    client's request timeout) and raises :class:`VaultUnavailableError` when they fail.
    """

    def __init__(self, kv: KeyValue, keys: MultiFernet, *, bucket: str = SESSIONS_BUCKET) -> None:
        self._kv = kv
        self._keys = keys
        self._bucket = bucket

    def __repr__(self) -> str:
        return f"KvSessionVault(bucket={self._bucket!r})"

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        keys: MultiFernet,
        *,
        replicas: int = 1,
        bucket: str = SESSIONS_BUCKET,
    ) -> KvSessionVault:
        """Bind to ``bucket``, creating it when missing (idempotent).

        Raises:
            VaultUnavailableError: JetStream did not answer or refused the bucket.
        """
        try:
            try:
                kv = await js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                kv = await js.create_key_value(
                    api.KeyValueConfig(
                        bucket=bucket,
                        history=1,
                        replicas=replicas,
                        storage=api.StorageType.FILE,
                        direct=False,
                        description="tgqr: encrypted Telethon sessions by tenant",
                    )
                )
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(f"session bucket {bucket!r} unavailable: {exc!r}") from exc
        return cls(kv, keys, bucket=bucket)

    async def put(self, tenant: str, session: str, *, stage: Stage) -> None:
        token = _seal(self._keys, validate_tenant(tenant), session, stage)
        try:
            await self._kv.put(tenant, token)
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(f"cannot store the session of {tenant!r}: {exc!r}") from exc

    async def get(self, tenant: str) -> VaultEntry | None:
        validate_tenant(tenant)
        token = await self._raw(tenant)
        return None if token is None else _open(self._keys, tenant, token)

    async def delete(self, tenant: str) -> None:
        validate_tenant(tenant)
        try:
            # Purge, not delete: no revision of the encrypted session stays behind the marker.
            await self._kv.purge(tenant)
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(
                f"cannot delete the session of {tenant!r}: {exc!r}"
            ) from exc

    async def tenants(self) -> list[str]:
        try:
            return sorted(await self._kv.keys())
        except nats.js.errors.NoKeysError:
            return []
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(f"cannot list the vault: {exc!r}") from exc

    async def rotate(self) -> int:
        count = 0
        for tenant in await self.tenants():
            if await self._rotate_one(tenant):
                count += 1
        return count

    async def _rotate_one(self, tenant: str) -> bool:
        while True:
            try:
                entry = await self._kv.get(tenant)
            except nats.js.errors.KeyNotFoundError:
                return False  # deleted meanwhile
            except _UNAVAILABLE as exc:
                raise VaultUnavailableError(f"cannot read the vault: {exc!r}") from exc
            token = _rotate(self._keys, tenant, entry.value or b"")
            try:
                # Compare-and-set: a concurrent put is re-read and rotated, never overwritten.
                await self._kv.update(tenant, token, last=entry.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except _UNAVAILABLE as exc:
                raise VaultUnavailableError(f"cannot rotate the vault: {exc!r}") from exc
            return True

    async def _raw(self, tenant: str) -> bytes | None:
        try:
            entry = await self._kv.get(tenant)
        except nats.js.errors.KeyNotFoundError:
            return None
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(f"cannot read the session of {tenant!r}: {exc!r}") from exc
        return entry.value or None
