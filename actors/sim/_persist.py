"""What a simulator keeps in its data directory: its ports, accounts, auth keys and logins.

Simulator mode promises that a stored or leased session keeps working after ``tgqr up``
restarts (README, "Session leases"). A Telethon session names its DC's address and holds an
auth key, so the DCs listen on the same ports again and still know the keys, the accounts and
which key is logged in as whom. One JSON file, mode 0600 (it holds the fake DCs' auth keys),
replaced atomically; blocking calls (run them in a worker thread from async code).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ._errors import SimulatorError
from ._mtproto import KeyRecord
from ._srp import Verifier
from ._state import KeyRef, User

__all__ = ["STATE_FILE", "SimSnapshot", "load_snapshot", "save_snapshot", "store_lock"]

STATE_FILE: Final = "simulator.json"
_LOCK_FILE: Final = "simulator.lock"
_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class SimSnapshot:
    """A simulator's lasting state: ``keys`` per DC, logins and pending 2FA per auth key."""

    ports: dict[int, int]
    users: list[User]
    keys: dict[int, list[KeyRecord]]
    authorized: dict[KeyRef, int]
    pending: dict[KeyRef, int]


def _user(user: User) -> dict[str, Any]:
    verifier = user.verifier
    return {
        "user_id": user.user_id,
        "dc_id": user.dc_id,
        "first_name": user.first_name,
        "access_hash": user.access_hash,
        "hint": user.hint,
        "verifier": None
        if verifier is None
        else {"salt1": verifier.salt1.hex(), "salt2": verifier.salt2.hex(), "v": str(verifier.v)},
    }


def _load_user(raw: dict[str, Any]) -> User:
    v = raw["verifier"]
    verifier = (
        None
        if v is None
        else Verifier(
            salt1=bytes.fromhex(v["salt1"]), salt2=bytes.fromhex(v["salt2"]), v=int(v["v"])
        )
    )
    return User(
        int(raw["user_id"]),
        int(raw["dc_id"]),
        str(raw["first_name"]),
        int(raw["access_hash"]),
        str(raw["hint"]),
        verifier,
    )


def save_snapshot(directory: Path, snapshot: SimSnapshot) -> None:
    """Write ``snapshot`` to ``directory/simulator.json`` (created 0600, replaced atomically).

    Raises:
        OSError: the file cannot be written.
    """
    doc = {
        "version": _VERSION,
        "ports": {str(dc): port for dc, port in snapshot.ports.items()},
        "users": [_user(user) for user in snapshot.users],
        "keys": [
            [dc, key.key_id, key.auth_key.hex(), key.salt]
            for dc, keys in snapshot.keys.items()
            for key in keys
        ],
        "authorized": [[dc, key_id, uid] for (dc, key_id), uid in snapshot.authorized.items()],
        "pending": [[dc, key_id, uid] for (dc, key_id), uid in snapshot.pending.items()],
    }
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / STATE_FILE
    partial = path.with_suffix(".json.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a partial file left by an older version may be looser
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(doc, out)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


def load_snapshot(directory: Path) -> SimSnapshot | None:
    """The snapshot in ``directory``, or None when there is none.

    Raises:
        SimulatorError: the file exists but is not a snapshot this version reads.
    """
    path = directory / STATE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SimulatorError(f"cannot read the simulator's state {path}: {exc}") from exc
    try:
        if doc["version"] != _VERSION:
            raise SimulatorError(f"{path}: unknown version {doc['version']!r}")
        keys: dict[int, list[KeyRecord]] = {}
        for dc, key_id, auth_key, salt in doc["keys"]:
            keys.setdefault(int(dc), []).append(
                KeyRecord(bytes.fromhex(auth_key), int(key_id), int(salt))
            )
        return SimSnapshot(
            ports={int(dc): int(port) for dc, port in doc["ports"].items()},
            users=[_load_user(raw) for raw in doc["users"]],
            keys=keys,
            authorized={(int(dc), int(k)): int(uid) for dc, k, uid in doc["authorized"]},
            pending={(int(dc), int(k)): int(uid) for dc, k, uid in doc["pending"]},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SimulatorError(f"{path} is not a simulator state file: {exc!r}") from exc


@contextmanager
def store_lock(directory: Path) -> Iterator[bool]:
    """Hold ``directory`` for one running simulator: yields whether this one got it (False:
    another simulator, in this process or another, uses it now). Released on exit.

    Raises:
        OSError: the lock file cannot be created.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock
