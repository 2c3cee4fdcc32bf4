"""HPKE (RFC 9180) single-shot encryption of a leased session to its holder's public key.

The service seals with :func:`seal`; an app opens with :meth:`KeyPair.open` (this module imports
nothing but ``cryptography`` and the standard library, so :mod:`actors.lease_client` can use it
without the service's dependencies). Two suites (docs/contract.md, "Session leases"):

- ``mlkem768-x25519`` (default): KEM ``MLKEM768_X25519`` (post-quantum hybrid: a Telegram auth
  key lives for years, so "harvest now, decrypt later" is a real threat), HKDF-SHA256,
  ChaCha20-Poly1305; a public key is the 1184-byte ML-KEM-768 key followed by the 32-byte X25519
  key; 1,136 bytes of overhead.
- ``x25519``: KEM ``X25519``, HKDF-SHA256, ChaCha20-Poly1305; 32-byte keys; 48 bytes overhead.

``info`` binds a sealed session to its lease (:func:`lease_info`): moved to another lease, or
opened with another key, it does not open. A lease's proof (:data:`PROOF_BYTES` random bytes
that renew, release and revoke must show) is sealed the same way under its own ``info``
(:func:`proof_info`), so neither sealed value can stand in for the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import cryptography
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm

try:
    from cryptography.hazmat.primitives import hpke
    from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "tgqr session leases need cryptography>=47 (HPKE with ML-KEM); "
        f"this environment has cryptography {cryptography.__version__}"
    ) from exc

__all__ = [
    "DEFAULT_SUITE",
    "PROOF_BYTES",
    "PUBLIC_KEY_BYTES",
    "SUITES",
    "HpkeError",
    "InvalidPublicKeyError",
    "KeyPair",
    "SealedOpenError",
    "check_public_key",
    "lease_info",
    "proof_info",
    "proxy_info",
    "seal",
]

DEFAULT_SUITE: Final = "mlkem768-x25519"
SUITES: Final = ("mlkem768-x25519", "x25519")
PUBLIC_KEY_BYTES: Final = {"mlkem768-x25519": 1184 + 32, "x25519": 32}
PROOF_BYTES: Final = 32
"""Length of a lease's proof secret."""
_MLKEM_BYTES: Final = 1184

_SUITES: Final = {
    "mlkem768-x25519": hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305
    ),
    "x25519": hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
}

_PublicKey = hpke.MLKEM768X25519PublicKey | x25519.X25519PublicKey
_PrivateKey = hpke.MLKEM768X25519PrivateKey | x25519.X25519PrivateKey


class HpkeError(Exception):
    """Base class of this module's errors."""


class InvalidPublicKeyError(HpkeError, ValueError):
    """Raised for an unknown suite, or a public key of the wrong length or form for its suite."""


class SealedOpenError(HpkeError):
    """Raised when a sealed session does not open: another key, another lease's ``info``, or
    altered bytes (HPKE authenticates all three)."""


def lease_info(tenant: str, lease_id: str, fence: int) -> bytes:
    """The HPKE ``info`` of a lease: ``tgqr-lease|<tenant>|<lease_id>|<fence>``."""
    return f"tgqr-lease|{tenant}|{lease_id}|{fence}".encode()


def proof_info(tenant: str, lease_id: str, fence: int) -> bytes:
    """The HPKE ``info`` of a lease's sealed proof:
    ``tgqr-lease-proof|<tenant>|<lease_id>|<fence>``."""
    return f"tgqr-lease-proof|{tenant}|{lease_id}|{fence}".encode()


def proxy_info(tenant: str, lease_id: str, fence: int) -> bytes:
    """The HPKE ``info`` of a lease's sealed proxy URL:
    ``tgqr-lease-proxy|<tenant>|<lease_id>|<fence>``."""
    return f"tgqr-lease-proxy|{tenant}|{lease_id}|{fence}".encode()


def _suite(name: str) -> hpke.Suite:
    suite = _SUITES.get(name)
    if suite is None:
        raise InvalidPublicKeyError(f"unknown suite {name[:40]!r}: one of {', '.join(SUITES)}")
    return suite


def _load_public_key(suite: str, data: bytes) -> _PublicKey:
    expected = PUBLIC_KEY_BYTES.get(suite)
    _suite(suite)
    if len(data) != expected:
        raise InvalidPublicKeyError(f"a {suite} public key is {expected} bytes, not {len(data)}")
    try:
        if suite == "x25519":
            return x25519.X25519PublicKey.from_public_bytes(data)
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(data[:_MLKEM_BYTES]),
            x25519.X25519PublicKey.from_public_bytes(data[_MLKEM_BYTES:]),
        )
    except UnsupportedAlgorithm as exc:
        raise InvalidPublicKeyError(f"this cryptography build cannot use {suite}") from exc
    except ValueError as exc:
        raise InvalidPublicKeyError(f"not a valid {suite} public key") from exc


def check_public_key(suite: str, data: bytes) -> None:
    """Raise :class:`InvalidPublicKeyError` unless ``data`` is a usable ``suite`` public key."""
    _load_public_key(suite, data)


def seal(suite: str, public_key: bytes, plaintext: bytes, info: bytes) -> bytes:
    """HPKE base-mode single-shot encryption: ``enc || ciphertext`` as one bytes object.

    Raises:
        InvalidPublicKeyError: ``suite`` or ``public_key`` is not usable.
    """
    return _suite(suite).encrypt(plaintext, _load_public_key(suite, public_key), info)


@dataclass(frozen=True, slots=True, eq=False)
class KeyPair:
    """A recipient key pair of ``suite``; its repr shows the suite only.

    ``public_key`` is what a lease request sends (base64 of it).
    """

    suite: str
    public_key: bytes = field(repr=False)
    _private: _PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, suite: str = DEFAULT_SUITE) -> KeyPair:
        """A fresh key pair (from the operating system's randomness).

        Raises:
            InvalidPublicKeyError: unknown suite, or this cryptography build lacks it.
        """
        _suite(suite)
        try:
            if suite == "x25519":
                x_private = x25519.X25519PrivateKey.generate()
                return cls(suite, x_private.public_key().public_bytes_raw(), x_private)
            m_private = mlkem.MLKEM768PrivateKey.generate()
            x_private = x25519.X25519PrivateKey.generate()
        except UnsupportedAlgorithm as exc:
            raise InvalidPublicKeyError(f"this cryptography build cannot use {suite}") from exc
        public = (
            m_private.public_key().public_bytes_raw() + x_private.public_key().public_bytes_raw()
        )
        return cls(suite, public, hpke.MLKEM768X25519PrivateKey(m_private, x_private))

    def open(self, sealed: bytes, info: bytes) -> bytes:
        """The plaintext of ``sealed``.

        Raises:
            SealedOpenError: another key, another ``info``, or altered bytes.
        """
        try:
            return _SUITES[self.suite].decrypt(sealed, self._private, info)
        except (InvalidTag, ValueError) as exc:
            raise SealedOpenError(
                "the sealed session does not open with this key and lease"
            ) from exc
