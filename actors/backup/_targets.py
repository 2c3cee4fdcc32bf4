"""Where backups are kept: the :class:`Target` port and a local directory (S3 in :mod:`._s3`,
the JetStream object store in :mod:`._objstore`, the URLs in :mod:`._url`). Objects are few
(two per backup) and each is read or written whole.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

import anyio

from ._errors import BackupNotFoundError, BackupTargetError

__all__ = ["DirectoryTarget", "Target", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class Target(Protocol):
    """A flat store of named objects. Every method blocks on the storage's IO.

    Raises (every method):
        BackupTargetError: the storage failed or refused.
    """

    def describe(self) -> str:
        """Where it is, for messages (no credentials)."""
        ...

    async def put(self, name: str, data: bytes) -> None: ...

    async def get(self, name: str) -> bytes:
        """Raises: BackupNotFoundError: there is no object ``name``."""
        ...

    async def names(self) -> list[str]:
        """Every object's name (any order)."""
        ...

    async def delete(self, name: str) -> None:
        """Remove ``name`` (nothing happens when it is already gone)."""
        ...


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name.startswith("."):
        raise BackupTargetError(f"invalid backup object name {name!r}")
    return name


class DirectoryTarget:
    """Objects as files (mode 0600) in a directory (mode 0700), each written whole or not at
    all (a temporary file renamed into place)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __repr__(self) -> str:
        return f"DirectoryTarget({str(self._path)!r})"

    def describe(self) -> str:
        return str(self._path)

    async def put(self, name: str, data: bytes) -> None:
        await anyio.to_thread.run_sync(self._put, check_name(name), data)

    def _put(self, name: str, data: bytes) -> None:
        try:
            self._path.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self._path / f".{name}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.replace(self._path / name)
        except OSError as exc:
            raise BackupTargetError(f"cannot write {name} in {self._path}: {exc}") from None

    async def get(self, name: str) -> bytes:
        path = self._path / check_name(name)
        try:
            return await anyio.Path(path).read_bytes()
        except FileNotFoundError:
            raise BackupNotFoundError(f"{self._path} holds no {name}") from None
        except OSError as exc:
            raise BackupTargetError(f"cannot read {path}: {exc}") from None

    async def names(self) -> list[str]:
        try:
            found = [p.name async for p in anyio.Path(self._path).iterdir()]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise BackupTargetError(f"cannot list {self._path}: {exc}") from None
        return [name for name in found if not name.startswith(".")]

    async def delete(self, name: str) -> None:
        try:
            await anyio.Path(self._path / check_name(name)).unlink(missing_ok=True)
        except OSError as exc:
            raise BackupTargetError(f"cannot delete {name} in {self._path}: {exc}") from None
