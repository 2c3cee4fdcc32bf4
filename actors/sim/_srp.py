"""Server side of Telegram's 2FA SRP (core.telegram.org/api/srp), pure and synchronous.

The account stores only a verifier ``v = g^x mod p`` with ``x = PH2(password, salt1, salt2)``.
Each ``account.getPassword`` gets a fresh single-use :class:`Challenge` (``srp_id``, ``B``);
``auth.checkPassword`` sends ``A`` and ``M1``, which :func:`verify` checks.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "P_BYTES",
    "Challenge",
    "G",
    "P",
    "Verifier",
    "new_challenge",
    "password_hash",
    "verify",
]

#: Telegram's 2048-bit safe prime (also the auth-key DH prime), with generator 3.
P_BYTES: Final = bytes.fromhex(
    "c71caeb9c6b1c9048e6c522f70f13f73980d40238e3e21c14934d037563d930f"
    "48198a0aa7c14058229493d22530f4dbfa336f6e0ac925139543aed44cce7c37"
    "20fd51f69458705ac68cd4fe6b6b13abdc9746512969328454f18faf8c595f64"
    "2477fe96bb2a941d5bcd1d4ac8cc49880708fa9b378e3c4f3a9060bee67cf9a4"
    "a4a695811051907e162753b56b0f6b410dba74d8a84b2a14b3144e0ef1284754"
    "fd17ed950d5965b4b9dd46582db1178d169c6bc465b0d6ff9ca3928fef5b9ae4"
    "e418fc15e83ebea0f87fa9ff5eed70050ded2849f47bf959d956850ce929851f"
    "0d8115f635b105ee2e4e15d04b2454bf6f4fadf034b10403119cd8e3b92fcc5b"
)
P: Final = int.from_bytes(P_BYTES, "big")
G: Final = 3
_SIZE: Final = 256
_PBKDF2_ITERATIONS: Final = 100_000
# A, B and g^b must stay at least 2^(2048-64) away from 0 and from p (Telegram's checks).
_MARGIN_BITS: Final = 2048 - 64


def _h(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _pad(number: int) -> bytes:
    return number.to_bytes(_SIZE, "big")


def _good(number: int) -> bool:
    return (
        0 < number < P
        and number.bit_length() >= _MARGIN_BITS
        and (P - number).bit_length() >= _MARGIN_BITS
    )


def _k() -> int:
    return int.from_bytes(_h(P_BYTES, _pad(G)), "big")


def password_hash(password: str, salt1: bytes, salt2: bytes) -> bytes:
    """``PH2``: the slow salted hash of the password (PBKDF2-HMAC-SHA512, 100 000 rounds)."""

    def salted(data: bytes, salt: bytes) -> bytes:
        return _h(salt, data, salt)

    ph1 = salted(salted(password.encode(), salt1), salt2)
    slow = hashlib.pbkdf2_hmac("sha512", ph1, salt1, _PBKDF2_ITERATIONS)
    return salted(slow, salt2)


@dataclass(frozen=True, slots=True)
class Verifier:
    """What the server keeps of a 2FA password: the salts and ``v``; never the password."""

    salt1: bytes
    salt2: bytes
    v: int = field(repr=False)

    @classmethod
    def create(cls, password: str, random_bytes: Callable[[int], bytes]) -> Verifier:
        """Derive a verifier with fresh salts (blocks ~0.1 s in PBKDF2)."""
        # salt1 = the server's 8 bytes + the 32 the client adds when it sets the password.
        salt1, salt2 = random_bytes(40), random_bytes(16)
        x = int.from_bytes(password_hash(password, salt1, salt2), "big")
        return cls(salt1=salt1, salt2=salt2, v=pow(G, x, P))


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``account.getPassword`` answer: ``srp_id`` and ``B``; ``b`` stays secret."""

    srp_id: int
    b: int = field(repr=False)
    srp_b: bytes = field(repr=False)


def new_challenge(verifier: Verifier, random_bytes: Callable[[int], bytes]) -> Challenge:
    """Pick a fresh secret ``b`` and compute ``B = k*v + g^b mod p``."""
    k = _k()
    while True:
        b = int.from_bytes(random_bytes(_SIZE), "big")
        g_b = pow(G, b, P)
        big_b = (k * verifier.v + g_b) % P
        if _good(g_b) and _good(big_b):
            srp_id = int.from_bytes(random_bytes(8), "little", signed=True)
            return Challenge(srp_id=srp_id, b=b, srp_b=_pad(big_b))


def verify(verifier: Verifier, challenge: Challenge, a_bytes: bytes, m1: bytes) -> bool:
    """True when the client's ``M1`` proves knowledge of the password behind ``verifier``."""
    a = int.from_bytes(a_bytes, "big")
    if len(a_bytes) > _SIZE or not _good(a):
        return False
    a_pad = _pad(a)
    u = int.from_bytes(_h(a_pad, challenge.srp_b), "big")
    if u == 0:
        return False
    s = pow(a * pow(verifier.v, u, P) % P, challenge.b, P)
    k_session = _h(_pad(s))
    hp, hg = _h(P_BYTES), _h(_pad(G))
    expected = _h(
        bytes(x ^ y for x, y in zip(hp, hg, strict=True)),
        _h(verifier.salt1),
        _h(verifier.salt2),
        a_pad,
        challenge.srp_b,
        k_session,
    )
    return hmac.compare_digest(expected, m1)
