"""The vault's keys and what they seal.

The key ring is a ``MultiFernet``, newest key first. A stored value is the Fernet token of a
small JSON document ``{"tenant", "stage", "session"}``; the tenant inside the token stops a
value copied under another tenant's key from being accepted. Both stores (:mod:`._kv`,
:mod:`._memory`) keep exactly these tokens, so rotation and wrong keys behave the same in each.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import msgspec
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from actors.keyfiles import create_key_file

from ._port import Stage, VaultCorruptError, VaultEntry, VaultKeyError

__all__ = ["KEYS_ENV", "KEY_FILE_NAME", "load_key_ring", "reseal", "seal", "unseal"]

_log = logging.getLogger(__name__)

KEYS_ENV: Final = "TGQR_VAULT_KEYS"
KEY_FILE_NAME: Final = "vault.key"


def load_key_ring(
    data_dir: Path, env: Mapping[str, str] = os.environ, *, create: bool = True
) -> MultiFernet:
    """The vault's key ring, newest key first.

    From ``TGQR_VAULT_KEYS`` (comma-separated Fernet keys, newest first) when set; otherwise from
    ``data_dir/vault.key`` (one key per line, newest first). With ``create`` (the service: ``tgqr
    up``, the demo) a missing file is created with mode 0600 and a fresh key, atomically:
    concurrent callers all end up with the same key. Every other caller (``vault rotate``)
    passes ``create=False``: a new key decrypts no stored session. Blocks on the file system.

    Raises:
        VaultKeyError: a key is not a valid Fernet key, the key file holds none, or ``create``
            is false and there is neither variable nor file (the message names both).
    """
    configured = env.get(KEYS_ENV, "").strip()
    if configured:
        return _ring(configured.split(","), KEYS_ENV)
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        if not create:
            raise VaultKeyError(f"no vault keys: {KEYS_ENV} is not set and {path} does not exist")
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
    if create_key_file(path, Fernet.generate_key() + b"\n"):
        _log.info("created vault key file %s", path)


# --- sealed session documents ----------------------------------------------------------------


class _Doc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tenant: str
    stage: Stage
    session: str

    def __repr__(self) -> str:
        return f"_Doc(tenant={self.tenant!r}, stage={self.stage!r})"


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(_Doc)


def seal(keys: MultiFernet, tenant: str, session: str, stage: Stage) -> bytes:
    """The token that stores ``tenant``'s session, encrypted with the newest key."""
    return keys.encrypt(_encoder.encode(_Doc(tenant=tenant, stage=stage, session=session)))


def unseal(keys: MultiFernet, tenant: str, token: bytes) -> VaultEntry:
    """The entry ``token`` holds for ``tenant``.

    Raises:
        VaultKeyError: no key decrypts it.
        VaultCorruptError: it decrypts, but not to a session document of ``tenant``.
    """
    try:
        plain = keys.decrypt(token)
    except InvalidToken:
        raise _undecryptable(tenant) from None
    try:
        doc = _decoder.decode(plain)
    except msgspec.DecodeError:
        raise VaultCorruptError(f"the stored session of tenant {tenant!r} is malformed") from None
    if doc.tenant != tenant:
        raise VaultCorruptError(f"the stored session under {tenant!r} belongs to another tenant")
    return VaultEntry(session=doc.session, stage=doc.stage)


PROXY_SUFFIX: Final = ".proxy"
"""A tenant's proxy is stored under ``<tenant>.proxy`` (a tenant id holds no dot)."""


def proxy_of(keys: MultiFernet, tenant: str, token: bytes) -> str:
    """The proxy URL ``token`` holds for ``tenant``.

    Raises:
        VaultKeyError: no key decrypts it.
        VaultCorruptError: it is not a proxy document of ``tenant``.
    """
    entry = unseal(keys, tenant, token)
    if entry.stage != "proxy":
        raise VaultCorruptError(f"the stored proxy of tenant {tenant!r} is not a proxy")
    return entry.session


def reseal(keys: MultiFernet, tenant: str, token: bytes) -> bytes:
    """``token`` encrypted anew with the newest key. Raises VaultKeyError: no key decrypts it."""
    try:
        return keys.rotate(token)
    except InvalidToken:
        raise _undecryptable(tenant) from None


def _undecryptable(tenant: str) -> VaultKeyError:
    return VaultKeyError(
        f"cannot decrypt the session of tenant {tenant!r} with the configured keys"
    )
