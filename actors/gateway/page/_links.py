"""Signed login links: a capability for one tenant's page, until it expires.

A link is ``<public url>/l/<token>``. The token is ``base64url(payload) "." base64url(mac)``
with ``payload = "1|<tenant>|<issued, unix ms>|<expires, unix s>|<link id>[|<lang>]"`` and
``mac`` the HMAC-SHA256 of the payload under the service's link key (the optional ``lang``,
``en`` or ``ru``, is the page's language when neither Telegram nor the browser names one;
links without it stay valid). Nothing in it can be guessed or
enumerated: without the key no valid token can be made, and every request checks the MAC first
(constant-time), then the expiry. The random link id names the link for its rate limits and
binds the page's CSRF tokens to it.

The key is ``TGQR_LINK_KEY`` (hex, at least 16 bytes) or the file ``link.key`` in the data
directory, created with mode 0600 on first use. All instances must share it: a link issued by
one is checked by another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from actors.keyfiles import create_key_file
from events import InvalidTenantError, validate_tenant

__all__ = [
    "DEFAULT_LINK_TTL_S",
    "LINK_KEY_ENV",
    "LINK_KEY_FILE",
    "BadLinkError",
    "ExpiredLinkError",
    "Link",
    "LinkClaims",
    "LinkKey",
    "LinkKeyError",
    "LinkSigner",
    "load_link_key",
]

LINK_KEY_ENV: Final = "TGQR_LINK_KEY"
LINK_KEY_FILE: Final = "link.key"
DEFAULT_LINK_TTL_S: Final = 600
MAX_TOKEN_LENGTH: Final = 400
_VERSION: Final = "1"
_LINK_PURPOSE: Final = b"tgqr-link|"
_CSRF_PURPOSE: Final = b"tgqr-csrf|"
_BIND_PURPOSE: Final = b"tgqr-miniapp|"
_LANGS: Final = frozenset({"en", "ru"})


class LinkKeyError(ValueError):
    """Raised by :func:`load_link_key` when the key is malformed or its file unreadable."""


class BadLinkError(Exception):
    """Raised by :meth:`LinkSigner.verify` for a token that was not issued with this key
    (malformed, altered or forged). The message never repeats the token."""


class ExpiredLinkError(BadLinkError):
    """Raised by :meth:`LinkSigner.verify` for a genuine token past its expiry."""


class LinkKey:
    """The link-signing key. Its ``repr`` never shows the key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise LinkKeyError("link key must be at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "LinkKey(<secret>)"

    def mac(self, purpose: bytes, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data``, domain-separated by ``purpose``."""
        return hmac.new(self._key, purpose + data, hashlib.sha256).digest()


def load_link_key(
    data_dir: Path, env: Mapping[str, str] = os.environ, *, create: bool = True
) -> LinkKey:
    """``TGQR_LINK_KEY`` (hex), else ``data_dir/link.key`` (created 0600 when missing, if
    ``create``: only the service, which issues links, makes one; a page that made its own
    would refuse every link).

    Blocks on the file system. Concurrent first starts end up with the same key.

    Raises:
        LinkKeyError: the variable is not hex of at least 16 bytes, or the file is unreadable
            (or missing, without ``create``).
    """
    raw = env.get(LINK_KEY_ENV, "").strip()
    if raw:
        try:
            return LinkKey(bytes.fromhex(raw))
        except ValueError:
            raise LinkKeyError(f"{LINK_KEY_ENV} must be at least 32 hex digits") from None
    path = data_dir / LINK_KEY_FILE
    if not create and not path.exists():
        raise LinkKeyError(f"no link key: {LINK_KEY_ENV} is not set and {path} does not exist")
    if not path.exists():
        create_key_file(path, secrets.token_hex(32).encode() + b"\n")
    try:
        return LinkKey(bytes.fromhex(path.read_text(encoding="utf-8").strip()))
    except (OSError, ValueError):
        raise LinkKeyError(f"cannot read the link key file {path}") from None


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a verified token says: whose page, since when, until when, and which link."""

    tenant: str
    issued_at: datetime
    expires_at: datetime
    link_id: str
    lang: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    """A freshly issued link."""

    claims: LinkClaims
    token: str = field(repr=False)  # a capability: never in a repr or a log line
    url: str = field(repr=False)

    def to_json(self) -> dict[str, object]:
        """The ``link`` command's reply fields (``expires_at`` encodes as ISO 8601 UTC)."""
        return {"tenant": self.claims.tenant, "url": self.url, "expires_at": self.claims.expires_at}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    # Strict: only the url-safe alphabet, no padding (a token is never re-encoded).
    if not text or any(c not in _ALPHABET for c in text):
        raise BadLinkError("not a tgqr link")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadLinkError("not a tgqr link") from None
    if _b64(data) != text:  # canonical only: one spelling per token
        raise BadLinkError("not a tgqr link")
    return data


_ALPHABET: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class LinkSigner:
    """Issues and verifies links and the page's CSRF tokens under one :class:`LinkKey`.

    ``base_url`` is where the page is reachable from outside (no trailing slash).
    """

    def __init__(self, key: LinkKey, base_url: str, clock: Callable[[], datetime]) -> None:
        self._key = key
        self.base_url = base_url.rstrip("/")
        self._clock = clock

    def issue(self, tenant: str, ttl_s: int = DEFAULT_LINK_TTL_S, lang: str = "") -> Link:
        """A new link to ``tenant``'s page valid for ``ttl_s`` seconds (1..600), in ``lang``
        (``en``, ``ru``; "": whatever the browser asks for) when nothing else names one.

        Raises:
            InvalidTenantError: ``tenant`` is not a valid id.
            ValueError: ``ttl_s`` or ``lang`` is out of range.
        """
        validate_tenant(tenant)
        if not 1 <= ttl_s <= DEFAULT_LINK_TTL_S:
            raise ValueError("ttl_s must be within 1..600")
        if lang and lang not in _LANGS:
            raise ValueError("lang must be en or ru")
        now = self._clock()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        expires = (now + timedelta(seconds=ttl_s)).replace(microsecond=0)
        link_id = _b64(secrets.token_bytes(9))
        payload = "|".join(
            (
                _VERSION,
                tenant,
                str(round(now.timestamp() * 1000)),
                str(int(expires.timestamp())),
                link_id,
                *((lang,) if lang else ()),
            )
        ).encode("ascii")
        token = f"{_b64(payload)}.{_b64(self._key.mac(_LINK_PURPOSE, payload))}"
        claims = LinkClaims(tenant, now, expires, link_id, lang)
        return Link(claims, token, f"{self.base_url}/l/{token}")

    def verify(self, token: str) -> LinkClaims:
        """The claims of a token this service issued and that has not expired.

        Raises:
            ExpiredLinkError: genuine but past its expiry.
            BadLinkError: anything else (malformed, altered, forged, another key).
        """
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise BadLinkError("not a tgqr link")
        encoded, _, mac_text = token.partition(".")
        payload, mac = _unb64(encoded), _unb64(mac_text)
        # The MAC first: nothing about an unsigned token (not even "expired") is revealed.
        if not hmac.compare_digest(self._key.mac(_LINK_PURPOSE, payload), mac):
            raise BadLinkError("not a tgqr link")
        try:
            version, tenant, issued, expires, link_id, *rest = payload.decode("ascii").split("|")
            validate_tenant(tenant)
            claims = LinkClaims(
                tenant,
                datetime.fromtimestamp(int(issued) / 1000, UTC),
                datetime.fromtimestamp(int(expires), UTC),
                link_id,
                rest[0] if len(rest) == 1 else "",
            )
        except (ValueError, InvalidTenantError):
            raise BadLinkError("not a tgqr link") from None
        if version != _VERSION or len(rest) > 1 or (rest and rest[0] not in _LANGS):
            raise BadLinkError("not a tgqr link")
        if self._clock() >= claims.expires_at:
            raise ExpiredLinkError("the link has expired")
        return claims

    def csrf_token(self, claims: LinkClaims) -> str:
        """A fresh token for the page's forms: a random nonce and its MAC bound to the link."""
        nonce = _b64(secrets.token_bytes(12))
        return f"{nonce}.{_b64(self._csrf_mac(claims, nonce))}"

    def check_csrf(self, claims: LinkClaims, token: str) -> bool:
        """Whether ``token`` came from :meth:`csrf_token` for this very link (constant-time)."""
        if len(token) > 100 or token.count(".") != 1:
            return False
        nonce, _, mac_text = token.partition(".")
        try:
            mac = _unb64(mac_text)
        except BadLinkError:
            return False
        return hmac.compare_digest(self._csrf_mac(claims, nonce), mac)

    def _csrf_mac(self, claims: LinkClaims, nonce: str) -> bytes:
        data = f"{claims.link_id}|{claims.tenant}|{nonce}".encode("ascii", "replace")
        return self._key.mac(_CSRF_PURPOSE, data)[:16]

    def bind(self, claims: LinkClaims, user_id: int, lang: str) -> str:
        """A pass saying Telegram vouched that ``user_id`` opened this link's page as a Mini
        App (checked by the page process): the page keeps it in its URL and forms."""
        payload = f"{user_id}|{lang}"
        return f"{_b64(payload.encode('ascii'))}.{_b64(self._bind_mac(claims, payload))}"

    def check_bind(self, claims: LinkClaims, token: str) -> tuple[int, str] | None:
        """(user id, language) of a pass :meth:`bind` made for this very link, else None."""
        if len(token) > 100 or token.count(".") != 1:
            return None
        encoded, _, mac_text = token.partition(".")
        try:
            payload, mac = _unb64(encoded).decode("ascii"), _unb64(mac_text)
        except (BadLinkError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(self._bind_mac(claims, payload), mac):
            return None
        user, _, lang = payload.partition("|")
        return (int(user), lang) if user.isdigit() and lang in _LANGS else None

    def _bind_mac(self, claims: LinkClaims, payload: str) -> bytes:
        data = f"{claims.link_id}|{claims.tenant}|{payload}".encode("ascii", "replace")
        return self._key.mac(_BIND_PURPOSE, data)[:16]
