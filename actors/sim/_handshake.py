"""Server side of MTProto's auth-key exchange (core.telegram.org/mtproto/auth_key), sans IO.

``req_pq_multi`` -> ``resPQ``; ``req_DH_params`` (RSA-encrypted ``p_q_inner_data*``) ->
``server_DH_params_ok``; ``set_client_DH_params`` -> ``dh_gen_ok`` and a new 2048-bit auth key.
The RSA key is a test key generated once per process (:func:`test_rsa_key`), or the one a
simulator's store keeps (:mod:`._rsakey`); Telethon learns it with
``telethon.crypto.rsa.add_key(pem, old=False)``.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from telethon.crypto import AES
from telethon.extensions import BinaryReader
from telethon.helpers import generate_key_data_from_nonce
from telethon.tl import TLObject, functions, types

from ._srp import P_BYTES, G, P

__all__ = ["Handshake", "HandshakeError", "RsaKey", "test_rsa_key"]

_MARGIN: Final = 1 << (2048 - 64)
_ZERO_IV: Final = bytes(32)


class HandshakeError(Exception):
    """Raised when a client breaks the key exchange (wrong nonce, bad hash, bad g_b, or a
    step out of order); the connection is then closed."""


@dataclass(frozen=True, slots=True)
class RsaKey:
    """The simulator's RSA key pair (raw RSA, as MTProto uses it)."""

    n: int
    e: int
    public_pem: str
    _private: rsa.RSAPrivateNumbers = field(repr=False)

    @property
    def fingerprint(self) -> int:
        """Lower 64 bits of SHA1(rsa_public_key n:bytes e:bytes), as a signed long."""
        n_bytes = self.n.to_bytes((self.n.bit_length() + 7) // 8, "big")
        e_bytes = self.e.to_bytes((self.e.bit_length() + 7) // 8, "big")
        data = TLObject.serialize_bytes(n_bytes) + TLObject.serialize_bytes(e_bytes)
        return int.from_bytes(_sha1(data)[-8:], "little", signed=True)

    def decrypt(self, data: bytes) -> bytes:
        """Raw RSA decryption (CRT) to 256 big-endian bytes; HandshakeError if out of range."""
        c = int.from_bytes(data, "big")
        if not 0 < c < self.n:
            raise HandshakeError("RSA payload out of range")
        k = self._private
        m1, m2 = pow(c, k.dmp1, k.p), pow(c, k.dmq1, k.q)
        m = m2 + k.q * (k.iqmp * (m1 - m2) % k.p)
        return m.to_bytes(256, "big")


@functools.cache
def test_rsa_key() -> RsaKey:
    """The process-wide test RSA key (generated on first use, ~0.1 s)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.private_numbers()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    return RsaKey(numbers.public_numbers.n, numbers.public_numbers.e, pem.decode(), numbers)


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()  # noqa: S324 - SHA1 is what the protocol specifies


def _unpad_rsa(key: RsaKey, encrypted: bytes) -> Any:
    """Recover ``p_q_inner_data*`` from RSA_PAD (current) or the legacy SHA1 scheme."""
    plain = key.decrypt(encrypted)
    # RSA_PAD: temp_key_xor(32) + AES-IGE(reversed(data_with_padding) + SHA256(...), temp_key)
    aes_encrypted = plain[32:]
    temp_key = bytes(
        x ^ y for x, y in zip(plain[:32], hashlib.sha256(aes_encrypted).digest(), strict=True)
    )
    data_with_hash = AES.decrypt_ige(aes_encrypted, temp_key, _ZERO_IV)
    data_with_padding = data_with_hash[:192][::-1]
    if hashlib.sha256(temp_key + data_with_padding).digest() == data_with_hash[192:]:
        with BinaryReader(data_with_padding) as reader:
            return reader.tgread_object()
    # Legacy: SHA1(data) + data + padding, 255 bytes (what Telethon 1.x sends).
    with BinaryReader(plain[21:]) as reader:
        inner = reader.tgread_object()
        length = reader.tell_position()
    if plain[0] != 0 or _sha1(plain[21 : 21 + length]) != plain[1:21]:
        raise HandshakeError("p_q_inner_data hash mismatch")
    return inner


def _is_prime(n: int) -> bool:
    # Deterministic Miller-Rabin for n < 3.4e14.
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17):
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in (2, 3, 5, 7, 11, 13, 17):
        x = pow(a, d, n)
        if x in {1, n - 1}:
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _random_prime(random_bytes: Callable[[int], bytes]) -> int:
    while True:
        # 24-bit primes: pq (the client's proof of work) must stay below 2^63; Telegram's is
        # ~2^62, this one ~2^48 so a Python client factorises it in milliseconds.
        candidate = (int.from_bytes(random_bytes(3), "big") & 0xFF_FFFF) | 0x80_0001
        if _is_prime(candidate):
            return candidate


@dataclass(slots=True)
class Handshake:
    """One key exchange on one connection. :meth:`handle` each plain request in order."""

    dc_id: int
    rsa_key: RsaKey
    random_bytes: Callable[[int], bytes]
    wall_clock: Callable[[], float] = time.time
    _nonce: int | None = None
    _server_nonce: int = 0
    _p: int = 0
    _q: int = 0
    _new_nonce: int = 0
    _a: int = 0

    def handle(self, request: Any) -> tuple[Any, bytes | None]:
        """Answer one step; the second item is the new auth key after the last step.

        Raises HandshakeError on any violation.
        """
        if isinstance(request, functions.ReqPqMultiRequest | functions.ReqPqRequest):
            return self._res_pq(request.nonce), None
        if isinstance(request, functions.ReqDHParamsRequest):
            return self._dh_params(request), None
        if isinstance(request, functions.SetClientDHParamsRequest):
            return self._dh_gen(request)
        raise HandshakeError(f"unexpected plain message {type(request).__name__}")

    def _check_nonces(self, request: Any) -> None:
        if request.nonce != self._nonce or request.server_nonce != self._server_nonce:
            raise HandshakeError("nonce mismatch")

    def _res_pq(self, nonce: int) -> Any:
        self._nonce = nonce
        self._server_nonce = int.from_bytes(self.random_bytes(16), "little", signed=True)
        self._p, self._q = sorted(
            (_random_prime(self.random_bytes), _random_prime(self.random_bytes))
        )
        pq = (self._p * self._q).to_bytes(8, "big")
        return types.ResPQ(nonce, self._server_nonce, pq, [self.rsa_key.fingerprint])

    def _dh_params(self, request: Any) -> Any:
        self._check_nonces(request)
        if request.public_key_fingerprint != self.rsa_key.fingerprint:
            raise HandshakeError("unknown RSA fingerprint")
        inner = _unpad_rsa(self.rsa_key, request.encrypted_data)
        if not isinstance(inner, types.PQInnerData | types.PQInnerDataDc | types.PQInnerDataTempDc):
            raise HandshakeError(f"unexpected inner data {type(inner).__name__}")
        self._check_nonces(inner)
        if (
            int.from_bytes(inner.p, "big") != self._p
            or int.from_bytes(inner.q, "big") != self._q
            or int.from_bytes(inner.pq, "big") != self._p * self._q
        ):
            raise HandshakeError("wrong factorisation of pq")
        self._new_nonce = inner.new_nonce
        while True:
            self._a = int.from_bytes(self.random_bytes(256), "big")
            g_a = pow(G, self._a, P)
            if _MARGIN <= g_a <= P - _MARGIN:
                break
        answer = bytes(
            types.ServerDHInnerData(
                nonce=self._nonce,
                server_nonce=self._server_nonce,
                g=G,
                dh_prime=P_BYTES,
                g_a=g_a.to_bytes(256, "big"),
                server_time=int(self.wall_clock()),
            )
        )
        with_hash = _sha1(answer) + answer
        with_hash += self.random_bytes(-len(with_hash) % 16)
        key, iv = generate_key_data_from_nonce(self._server_nonce, self._new_nonce)
        return types.ServerDHParamsOk(
            self._nonce, self._server_nonce, AES.encrypt_ige(with_hash, key, iv)
        )

    def _dh_gen(self, request: Any) -> tuple[Any, bytes | None]:
        self._check_nonces(request)
        if not self._a:
            raise HandshakeError("set_client_DH_params before req_DH_params")
        key, iv = generate_key_data_from_nonce(self._server_nonce, self._new_nonce)
        if len(request.encrypted_data) % 16:
            raise HandshakeError("encrypted_data is not a multiple of 16 bytes")
        plain = AES.decrypt_ige(request.encrypted_data, key, iv)
        with BinaryReader(plain[20:]) as reader:
            inner = reader.tgread_object()
            length = reader.tell_position()
        if (
            not isinstance(inner, types.ClientDHInnerData)
            or _sha1(plain[20 : 20 + length]) != plain[:20]
        ):
            raise HandshakeError("client_DH_inner_data hash mismatch")
        self._check_nonces(inner)
        g_b = int.from_bytes(inner.g_b, "big")
        if not _MARGIN <= g_b <= P - _MARGIN:
            raise HandshakeError("g_b out of the safe range")
        gab = pow(g_b, self._a, P)
        # 256 big-endian bytes, as Telegram keeps it. Telethon keeps g^ab in its shortest form
        # (rsa.get_byte_array): for the one key in 256 that starts with a zero byte its nonce
        # hash differs, it refuses that exchange ("invalid new nonce hash") and makes another
        # (the adapter allows it a second try). Accepting the short form instead, as this did,
        # let such a key in, and a StringSession pads it back to 256 bytes at the end: a key
        # restored from the vault was then unknown (-404), one session in 256.
        auth_key = gab.to_bytes(256, "big")
        self._a = 0  # one key per exchange
        digest = _sha1(auth_key)
        new_nonce = self._new_nonce.to_bytes(32, "little", signed=True)
        nonce_hash = _sha1(new_nonce + b"\x01" + digest[:8])[4:20]
        reply = types.DhGenOk(
            self._nonce, self._server_nonce, int.from_bytes(nonce_hash, "little", signed=True)
        )
        return reply, auth_key

    def initial_salt(self) -> int:
        """``substr(new_nonce, 0, 8) XOR substr(server_nonce, 0, 8)``: the key's first salt."""
        new_nonce = self._new_nonce.to_bytes(32, "little", signed=True)[:8]
        server_nonce = self._server_nonce.to_bytes(16, "little", signed=True)[:8]
        salt = bytes(x ^ y for x, y in zip(new_nonce, server_nonce, strict=True))
        return int.from_bytes(salt, "little", signed=True)
