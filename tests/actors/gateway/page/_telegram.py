"""Mini App launch data for tests, signed as Telegram signs it (with a test bot token, or an
Ed25519 key standing in for Telegram's), and the URL fragment a Telegram client appends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

BOT_TOKEN = "123456789:AAtest-token-for-the-page-only_0123456"
"""A made-up bot token (the tests' bot)."""
THEME = {
    "bg_color": "#17212b",
    "secondary_bg_color": "#0e1621",
    "text_color": "#f5f5f5",
    "hint_color": "#708499",
    "button_color": "#5288c1",
    "button_text_color": "#ffffff",
}


def _check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))


def user_json(user_id: int, lang: str = "en", name: str = "Ann") -> str:
    return json.dumps(
        {"id": user_id, "first_name": name, "language_code": lang}, separators=(",", ":")
    )


def init_data(
    user_id: int,
    auth_date: int,
    *,
    lang: str = "en",
    token: str = BOT_TOKEN,
    signer: Ed25519PrivateKey | None = None,
    bot_id: int = 0,
) -> str:
    """``initData`` for ``user_id`` as Telegram makes it: ``hash`` with the bot ``token``'s
    secret; with ``signer``, also the third-party ``signature`` over ``<bot_id>:WebAppData``."""
    fields = {
        "query_id": "AAHtest",
        "user": user_json(user_id, lang),
        "auth_date": str(auth_date),
    }
    if signer is not None:
        message = f"{bot_id}:WebAppData\n{_check_string(fields)}".encode()
        signature = base64.urlsafe_b64encode(signer.sign(message)).rstrip(b"=").decode()
        fields["signature"] = signature
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, _check_string(fields).encode(), hashlib.sha256).hexdigest()
    return urlencode(fields, quote_via=quote)


def fragment(data: str, theme: dict[str, str] | None = None, platform: str = "tdesktop") -> str:
    """The ``#...`` a Telegram client appends to a Mini App's URL."""
    params = {
        "tgWebAppData": data,
        "tgWebAppVersion": "8.0",
        "tgWebAppPlatform": platform,
        "tgWebAppThemeParams": json.dumps(theme or THEME, separators=(",", ":")),
    }
    return "#" + urlencode(params, quote_via=quote)
