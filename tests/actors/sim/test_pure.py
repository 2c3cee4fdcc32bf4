"""The simulator's pure parts: SRP against Telethon's client math, the login state machine
and transport framing."""

from __future__ import annotations

import os
import struct

import pytest
from telethon.password import compute_check
from telethon.tl import types

from actors.sim._errors import RpcFailure, SimulatorError
from actors.sim._srp import P_BYTES, G, Verifier, new_challenge, verify
from actors.sim._state import Authorized, MigrateTo, SimState, TokenIssued
from actors.sim._transport import open_transport

pytestmark = pytest.mark.anyio


def client_view(verifier: Verifier, srp_id: int, srp_b: bytes) -> types.account.Password:
    algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
        salt1=verifier.salt1, salt2=verifier.salt2, g=G, p=P_BYTES
    )
    return types.account.Password(
        new_algo=algo,
        new_secure_algo=types.SecurePasswordKdfAlgoSHA512(salt=b""),
        secure_random=b"",
        has_password=True,
        current_algo=algo,
        srp_B=srp_b,
        srp_id=srp_id,
    )


def test_srp_accepts_the_right_password_only() -> None:
    """M1 computed by Telethon's compute_check verifies for the right password only."""
    verifier = Verifier.create("secret", os.urandom)
    assert "secret" not in repr(verifier)
    for password, expected in [("secret", True), ("Secret", False)]:
        challenge = new_challenge(verifier, os.urandom)
        check = compute_check(client_view(verifier, challenge.srp_id, challenge.srp_b), password)
        assert verify(verifier, challenge, check.A, check.M1) is expected


def test_srp_refuses_a_degenerate_a() -> None:
    """A = 0 (or anything outside the safe range) never verifies."""
    verifier = Verifier.create("secret", os.urandom)
    challenge = new_challenge(verifier, os.urandom)
    assert not verify(verifier, challenge, bytes(256), bytes(32))


def state() -> SimState:
    return SimState(dc_ids=(1, 2), token_ttl_s=30, random_bytes=os.urandom)


def test_state_plain_login_and_migration() -> None:
    """export -> accept -> export gives success at home and MigrateTo elsewhere, whose
    token imports once on the user's DC."""
    s = state()
    home, away = s.add_user(1, dc_id=1, password=None, hint="", first_name=""), None
    away = s.add_user(2, dc_id=2, password=None, hint="", first_name="")
    first = s.export_token((1, 10), now=100.0, except_ids=[])
    assert isinstance(first, TokenIssued)
    assert first.expires == 130
    assert s.accept(first.token, home, now=101.0) == (1, 10)
    assert s.export_token((1, 10), now=102.0, except_ids=[]) == Authorized(home)
    second = s.export_token((1, 11), now=100.0, except_ids=[])
    assert isinstance(second, TokenIssued)
    s.accept(second.token, away, now=101.0)
    migrate = s.export_token((1, 11), now=102.0, except_ids=[])
    assert isinstance(migrate, MigrateTo)
    assert migrate.dc_id == 2
    with pytest.raises(RpcFailure, match="AUTH_TOKEN_INVALID"):
        s.import_token((1, 12), migrate.token, now=103.0)  # wrong DC
    assert s.import_token((2, 20), migrate.token, now=103.0) == Authorized(away)
    assert s.user_of((2, 20)) == away
    assert s.logins == 2
    assert s.revoke(2) == 1
    assert s.user_of((2, 20)) is None


def test_state_scripts_are_consumed_in_order() -> None:
    """Scripted failures apply to the next calls of their method only."""
    s = state()
    s.script("auth.exportLoginToken", RpcFailure(420, "FLOOD_WAIT_3"), 2)
    s.script("auth.exportLoginToken", RpcFailure(500, "INTERNAL"), 1)
    taken = [s.take_scripted("auth.exportLoginToken") for _ in range(4)]
    assert [f.message if f else None for f in taken] == [
        "FLOOD_WAIT_3",
        "FLOOD_WAIT_3",
        "INTERNAL",
        None,
    ]
    with pytest.raises(SimulatorError):
        s.script("x", RpcFailure(500, "INTERNAL"), 0)


def test_state_forgets_long_expired_tokens() -> None:
    """Tokens are pruned some time after expiry, so memory stays bounded."""
    s = state()
    old = s.export_token((1, 1), now=0.0, except_ids=[])
    assert isinstance(old, TokenIssued)
    s.export_token((1, 2), now=10_000.0, except_ids=[])
    user = s.add_user(5, dc_id=1, password=None, hint="", first_name="")
    with pytest.raises(SimulatorError, match="unknown"):
        s.accept(old.token, user, now=10_000.0)


class Chunks:
    """A reader over fixed bytes, standing in for the socket."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def receive_exactly(self, nbytes: int) -> bytes:
        chunk, self._data = self._data[:nbytes], self._data[nbytes:]
        assert len(chunk) == nbytes
        return chunk


async def test_padded_intermediate_strips_random_padding() -> None:
    """Padded intermediate packets lose their 0-15 random bytes."""
    plain = bytes(8) + struct.pack("<qi", 4, 8) + bytes(8)
    encrypted = b"\x01" * 8 + bytes(16) + bytes(32)
    framed = b"".join(
        struct.pack("<I", len(p) + pad) + p + os.urandom(pad)
        for p, pad in [(plain, 3), (encrypted, 15)]
    )
    transport = await open_transport(Chunks(b"\xdd\xdd\xdd\xdd" + framed))
    assert await transport.receive() == plain
    assert await transport.receive() == encrypted
