"""Signed links: what verifies, what is refused (and that "expired" is said only of genuine
links), the CSRF tokens bound to a link, and the key file."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.gateway.page import (
    LINK_KEY_ENV,
    BadLinkError,
    ExpiredLinkError,
    LinkKey,
    LinkKeyError,
    LinkSigner,
    load_link_key,
)
from events import InvalidTenantError

from ._fakes import BASE, LINK_KEY, T0, Clock


def signer(clock: Clock | None = None, key: LinkKey = LINK_KEY) -> LinkSigner:
    return LinkSigner(key, BASE, clock or Clock())


def test_an_issued_link_verifies_with_its_claims() -> None:
    """The token names the tenant, when it was issued and until when it holds."""
    link = signer().issue("alice", 120)
    assert link.url == f"{BASE}/l/{link.token}"
    claims = signer().verify(link.token)
    assert claims.tenant == "alice"
    assert claims.issued_at == T0
    assert claims.expires_at == T0 + timedelta(seconds=120)
    assert claims == link.claims
    assert link.to_json() == {"tenant": "alice", "url": link.url, "expires_at": claims.expires_at}


def test_links_are_distinct_and_name_no_other_tenant() -> None:
    """Two links of one tenant differ (their ids rate-limit separately)."""
    first, second = signer().issue("alice"), signer().issue("alice")
    assert first.token != second.token
    assert first.claims.link_id != second.claims.link_id


@pytest.mark.parametrize("ttl", [0, 601, -5])
def test_ttl_out_of_range_is_refused(ttl: int) -> None:
    """``ttl_s`` is 1..600, as the ``link`` command's."""
    with pytest.raises(ValueError, match="ttl_s"):
        signer().issue("alice", ttl)


def test_an_invalid_tenant_gets_no_link() -> None:
    with pytest.raises(InvalidTenantError):
        signer().issue("bad.tenant")


def test_an_expired_link_is_refused_as_expired() -> None:
    """Past ``expires_at`` the link is refused with ExpiredLinkError."""
    clock = Clock()
    token = signer(clock).issue("alice", 60).token
    clock.advance(59.9)
    signer(clock).verify(token)
    clock.advance(0.1)
    with pytest.raises(ExpiredLinkError):
        signer(clock).verify(token)


def test_another_key_does_not_verify() -> None:
    token = signer(key=LinkKey(b"x" * 32)).issue("alice").token
    with pytest.raises(BadLinkError) as caught:
        signer().verify(token)
    assert not isinstance(caught.value, ExpiredLinkError)


def test_tampered_and_expired_is_tampered() -> None:
    """The MAC is checked first: an altered token never learns it has expired."""
    clock = Clock()
    token = signer(clock).issue("alice", 1).token
    clock.advance(3600)
    payload, mac = token.split(".")
    with pytest.raises(BadLinkError) as caught:
        signer(clock).verify(f"{payload}.{mac[:-2]}AA")
    assert not isinstance(caught.value, ExpiredLinkError)


@pytest.mark.parametrize(
    "token",
    ["", ".", "abc", "a.b.c", "x" * 500, "AAAA.AAAA", "QUJD=.QUJD", "+/+/.+/+/", "é.é", "a b.c"],
)
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(BadLinkError):
        signer().verify(token)


@given(st.data())
def test_any_change_to_a_token_is_refused(data: st.DataObject) -> None:
    """Replacing any one character of a genuine token makes it invalid."""
    token = signer().issue("alice").token
    index = data.draw(st.integers(0, len(token) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != token[index]]))
    altered = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(BadLinkError):
        signer().verify(altered)


def test_csrf_tokens_are_bound_to_their_link() -> None:
    """A page's CSRF token works for its own link only, and only as issued."""
    s = signer()
    mine, other = s.issue("alice").claims, s.issue("alice").claims
    token = s.csrf_token(mine)
    assert s.check_csrf(mine, token)
    assert not s.check_csrf(other, token)
    assert not s.check_csrf(mine, "")
    assert not s.check_csrf(mine, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not s.check_csrf(mine, "x" * 200)
    assert s.csrf_token(mine) != token  # a fresh nonce each page


def test_link_key_from_the_environment(tmp_path: Path) -> None:
    key = load_link_key(tmp_path, {LINK_KEY_ENV: "ab" * 16})
    assert repr(key) == "LinkKey(<secret>)"
    assert not (tmp_path / "link.key").exists()
    with pytest.raises(LinkKeyError, match=LINK_KEY_ENV):
        load_link_key(tmp_path, {LINK_KEY_ENV: "not hex"})
    with pytest.raises(LinkKeyError):
        load_link_key(tmp_path, {LINK_KEY_ENV: "abcd"})


def test_link_key_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    """Without the variable a key file is created (0600) and then reused."""
    first = load_link_key(tmp_path / "data", {})
    path = tmp_path / "data" / "link.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_link_key(tmp_path / "data", {})
    token = LinkSigner(first, BASE, Clock()).issue("alice").token
    LinkSigner(again, BASE, Clock()).verify(token)
    assert [p.name for p in path.parent.iterdir()] == ["link.key"]
    path.write_text("garbage\n")
    path.chmod(0o600)
    with pytest.raises(LinkKeyError, match="link key file"):
        load_link_key(tmp_path / "data", {})


def _forge(payload: bytes) -> str:
    """A token with ``payload`` signed under the tests' key (as the service would sign it)."""
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(payload)}.{b64(LINK_KEY.mac(b'tgqr-link|', payload))}"


def test_a_language_signed_into_the_link() -> None:
    """``lang`` is part of the signed payload; links without it (issued before) still verify;
    a language that is not ours is refused, at issue and in a token."""
    link = signer().issue("alice", 120, "ru")
    assert signer().verify(link.token).lang == "ru"
    issued_ms = int(T0.timestamp() * 1000)
    expires = int(T0.timestamp()) + 60
    old = _forge(f"1|alice|{issued_ms}|{expires}|bGlua2lk".encode())
    assert signer().verify(old).lang == ""
    for bad in ("de", "", "ru|en"):
        with pytest.raises(BadLinkError):
            signer().verify(_forge(f"1|alice|{issued_ms}|{expires}|bGlua2lk|{bad}".encode()))
    with pytest.raises(ValueError, match="lang"):
        signer().issue("alice", 120, "de")
    body, _, mac = link.token.partition(".")
    with pytest.raises(BadLinkError):  # the language cannot be changed
        signer().verify(f"{body[:-2]}{'ZW' if body[-2:] != 'ZW' else 'cn'}.{mac}")
