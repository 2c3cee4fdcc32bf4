"""``tg://login?token=...`` URLs (base64url without padding)."""

from __future__ import annotations

import base64
import binascii

__all__ = ["login_url", "parse_login_url"]

_PREFIX = "tg://login?token="


def login_url(token: bytes) -> str:
    """The URL the QR code shows for ``token``."""
    return _PREFIX + base64.urlsafe_b64encode(token).decode().rstrip("=")


def parse_login_url(url: str) -> bytes:
    """The token inside ``url``.

    Raises:
        ValueError: not a ``tg://login`` URL, or malformed base64.
    """
    if not url.startswith(_PREFIX):
        raise ValueError("not a tg://login URL")
    encoded = url[len(_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("malformed login token") from exc
