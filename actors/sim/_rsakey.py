"""The RSA key a simulator with a ``store`` keeps there (``rsa.pem``, 0600), so that it signs
the key exchange with the same key after a restart: clients in other processes (instances in
``--sim shared`` mode) registered its public key once, from ``tgqr.sim.info``.

Every key a simulator of this process uses is known here, so that
``Simulator.register_with_telethon()`` makes Telethon trust all of them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._errors import SimulatorError
from ._handshake import RsaKey, test_rsa_key

__all__ = ["known_public_keys", "stored_rsa_key"]

KEY_FILE: Final = "rsa.pem"
_KNOWN: dict[str, None] = {}  # public PEMs in use in this process (ordered, no duplicates)


def _as_key(private: rsa.RSAPrivateKey) -> RsaKey:
    numbers = private.private_numbers()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    return RsaKey(numbers.public_numbers.n, numbers.public_numbers.e, pem.decode(), numbers)


def stored_rsa_key(store: Path) -> RsaKey:
    """The key kept in ``store`` (made there on first use, atomically: concurrent callers end
    up with the same key). Blocks on the file system.

    Raises:
        SimulatorError: the file is not an RSA private key.
    """
    path = store / KEY_FILE
    if not path.exists():
        store.mkdir(mode=0o700, parents=True, exist_ok=True)
        made = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = made.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        partial = store / f"{KEY_FILE}.{os.getpid()}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use that
            os.link(partial, path)
        partial.unlink()
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise SimulatorError(f"{path} is not a readable RSA key") from exc
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise SimulatorError(f"{path} is not an RSA key")
    key = _as_key(loaded)
    _KNOWN[key.public_pem] = None
    return key


def known_public_keys() -> list[str]:
    """The public PEMs of every key this process's simulators use (the process key first)."""
    return [test_rsa_key().public_pem, *_KNOWN]
