"""The data directory's privacy: secret key files created once (0600, never overwritten), the
directory itself and what tgqr creates in it private to its user (dirs 0700, files 0600).

Key files are used by the vault (Fernet keys), the service (the chain key) and the page (the
link key), so that several processes starting at once on one data directory end up with the
same key. ``tgqr`` runs with the umask :data:`PRIVATE_UMASK`, so every file it or its children
(nats-server, DuckDB) create is private; :func:`secure_data_dir` tightens a directory made
before that.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Final

__all__ = ["PRIVATE_UMASK", "create_key_file", "private_dir", "secure_data_dir"]

PRIVATE_UMASK: Final = 0o077
"""The umask of every tgqr command: what it creates is readable and writable by its user only."""
_SHARED: Final = stat.S_IRWXG | stat.S_IRWXO


def private_dir(path: Path) -> Path:
    """``path`` as a directory of mode 0700: created (with missing parents) or tightened.

    Raises:
        OSError: it cannot be created or its mode changed (not the owner).
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def secure_data_dir(path: Path, entries: Iterable[str] = ()) -> Path:
    """Make the data directory private (0700) and take group and other permissions off each
    of ``entries`` (names in it that tgqr made) and, for a directory, of everything beneath
    it: a directory made by an older tgqr, or under a looser umask, is tightened at start.
    Symbolic links are neither followed nor changed; nothing else in the directory is touched.

    Raises:
        OSError: the directory cannot be created or its mode changed.
    """
    private_dir(path)
    for name in entries:
        _tighten(path / name)
    return path


def _tighten(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        return
    if mode & _SHARED:
        path.chmod(stat.S_IMODE(mode) & ~_SHARED)
    if stat.S_ISDIR(mode):
        for child in path.iterdir():
            _tighten(child)


def create_key_file(path: Path, content: bytes) -> bool:
    """Write ``content`` to ``path`` (0600, whatever the umask) unless it exists; whether this
    call created it. The file appears whole or not at all, and a hard link never replaces an
    existing file: whoever links first wins, the others reuse theirs.

    Raises:
        OSError: the directory cannot be created or written.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        path.hardlink_to(tmp)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True
