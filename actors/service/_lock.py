"""One ``tgqr up`` per data directory: an exclusive lock on ``<data>/tgqr.lock``.

Two services on one data directory would share the embedded nats-server's store, the DuckDB
file and ``nats.url``; the second refuses before it touches any of them. The lock is
``flock`` on an open file, so it ends with the process however that ends (no stale lock).
Taking it also makes the directory private (0700) and tightens what tgqr keeps in it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from actors.keyfiles import secure_data_dir

from ._config import ConfigError

__all__ = ["DATA_ENTRIES", "LOCK_FILE", "DataDirLockedError", "lock_data_dir"]

LOCK_FILE: Final = "tgqr.lock"
DATA_ENTRIES: Final = (
    LOCK_FILE,
    "nats.url",
    "nats",  # the embedded nats-server's store, its config and log
    "sim",
    "creds",
    "leases",
    "demo",
    "chain.key",
    "link.key",
    "vault.key",
    "tgqr.duckdb",
    "tgqr.duckdb.wal",
)
"""What tgqr keeps in a data directory, tightened (no group or other access) at start."""


class DataDirLockedError(ConfigError):
    """Raised when another process holds the data directory's lock."""


@contextmanager
def lock_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's lock for the block (the file records the holder's pid).

    The directory becomes 0700 (created so if missing) and :data:`DATA_ENTRIES` lose any
    group or other permission first.

    Raises:
        DataDirLockedError: another ``tgqr up`` holds it; nothing in the directory but its
            modes is changed.
        OSError: the directory cannot be created or made private.
    """
    secure_data_dir(data_dir, DATA_ENTRIES)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise DataDirLockedError(
                f"another tgqr up is using {data_dir}/{pid}: stop it first, or use another --data"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
