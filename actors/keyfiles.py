"""Secret key files under the data directory: created once, mode 0600, never overwritten.

Used by the vault (Fernet keys), the service (the chain key) and the page (the link key), so
that several processes starting at once on one data directory end up with the same key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["create_key_file"]


def create_key_file(path: Path, content: bytes) -> bool:
    """Write ``content`` to ``path`` (0600, whatever the umask) unless it exists; whether this
    call created it. The file appears whole or not at all, and a hard link never replaces an
    existing file: whoever links first wins, the others reuse theirs.

    Raises:
        OSError: the directory cannot be created or written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
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
