"""Telegram Mini App launch data (``initData``): checked on the server, never in the browser only.

Telegram opens a Mini App with ``#tgWebAppData=<initData>`` in the URL; the page's script posts
it here. ``initData`` is a query string (``user`` as JSON, ``auth_date``, ``hash``, optionally
``signature``). Its ``data_check_string`` is every field but ``hash`` (and ``signature``) as
``key=value``, sorted by key, joined by ``\\n``. It is Telegram's when either:

- with the bot token: ``hex(HMAC_SHA256(key=HMAC_SHA256(key="WebAppData", msg=token),
  msg=data_check_string)) == hash`` (constant-time); or
- with only the bot id (third-party check): the Ed25519 ``signature`` (base64url) verifies under
  Telegram's public key over ``"<bot_id>:WebAppData\\n" + data_check_string``.

Then ``auth_date`` must be at most ``max_age_s`` old (and not in the future). The bot token is
a secret: :class:`BotToken` never shows it, and no error message repeats the data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "BOT_ID_ENV",
    "BOT_TOKEN_ENV",
    "BOT_TOKEN_FILE_ENV",
    "DEFAULT_MAX_AGE_S",
    "INITDATA_MAX_AGE_ENV",
    "TELEGRAM_PUBLIC_KEY",
    "TELEGRAM_TEST_PUBLIC_KEY",
    "BotToken",
    "InitDataError",
    "TelegramAuth",
    "TelegramAuthError",
    "TelegramUser",
    "load_telegram_auth",
    "validate_init_data",
]

BOT_TOKEN_ENV: Final = "TGQR_BOT_TOKEN"  # noqa: S105 - its name
BOT_TOKEN_FILE_ENV: Final = "TGQR_BOT_TOKEN_FILE"  # noqa: S105 - its name
BOT_ID_ENV: Final = "TGQR_BOT_ID"
INITDATA_MAX_AGE_ENV: Final = "TGQR_INITDATA_MAX_AGE_S"
DEFAULT_MAX_AGE_S: Final = 3600
MAX_INIT_DATA: Final = 6000
FUTURE_SKEW_S: Final = 60
TELEGRAM_PUBLIC_KEY: Final = "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d"
"""Telegram's Ed25519 key for third-party validation (production environment)."""
TELEGRAM_TEST_PUBLIC_KEY: Final = "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec"
"""The same for Telegram's test environment."""


class TelegramAuthError(ValueError):
    """Raised by :func:`load_telegram_auth` for an unusable configuration (no secret in it)."""


class InitDataError(Exception):
    """``initData`` that is not Telegram's, or too old. ``reason``: ``malformed``, ``forged``
    or ``stale``; the message never repeats the data."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"initData refused ({reason})")
        self.reason = reason


class BotToken:
    """The bot token: only its Mini App secret is kept. Its ``repr`` never shows either."""

    __slots__ = ("_secret",)

    def __init__(self, token: str) -> None:
        token = token.strip()
        head, sep, tail = token.partition(":")
        if not head.isdigit() or not sep or not tail:
            raise TelegramAuthError(f"{BOT_TOKEN_ENV} must look like 123456:ABC...")
        self._secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "BotToken(<secret>)"

    def matches(self, data_check_string: str, hash_hex: str) -> bool:
        """Whether ``hash_hex`` is this bot's HMAC of ``data_check_string`` (constant-time)."""
        mac = hmac.new(self._secret, data_check_string.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(mac, hash_hex.lower())


@dataclass(frozen=True, slots=True)
class TelegramAuth:
    """How the page checks ``initData``: the bot token, else the bot id and Telegram's key.

    ``max_age_s``: how old ``auth_date`` may be (None: no limit, for test vectors only).
    """

    token: BotToken | None = None
    bot_id: int | None = None
    public_key: str = field(default=TELEGRAM_PUBLIC_KEY, repr=False)
    max_age_s: int | None = DEFAULT_MAX_AGE_S

    def __post_init__(self) -> None:
        if self.token is None and self.bot_id is None:
            raise TelegramAuthError(f"{BOT_TOKEN_ENV} or {BOT_ID_ENV} is needed")


@dataclass(frozen=True, slots=True)
class TelegramUser:
    """Who opened the Mini App, as Telegram signed it."""

    id: int
    language_code: str = ""
    first_name: str = ""
    auth_date: int = 0


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InitDataError("malformed") from None


def _fields(raw: str) -> dict[str, str]:
    if not raw or len(raw) > MAX_INIT_DATA:
        raise InitDataError("malformed")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True, max_num_fields=40)
    except ValueError:
        raise InitDataError("malformed") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):  # a repeated key: not what Telegram sends
        raise InitDataError("malformed")
    return fields


def _check_string(fields: Mapping[str, str], *without: str) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in without)


def _signed(fields: Mapping[str, str], auth: TelegramAuth) -> bool:
    if auth.token is not None:
        given = fields.get("hash", "")
        if len(given) != 64:
            return False
        # The bot-token hash covers ``signature`` when there is one; older clients sent none.
        if auth.token.matches(_check_string(fields, "hash"), given):
            return True
        return "signature" in fields and auth.token.matches(
            _check_string(fields, "hash", "signature"), given
        )
    signature = _unb64url(fields.get("signature", ""))
    message = f"{auth.bot_id}:WebAppData\n" + _check_string(fields, "hash", "signature")
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(auth.public_key))
        key.verify(signature, message.encode())
    except (InvalidSignature, ValueError):
        return False
    return True


def validate_init_data(raw: str, auth: TelegramAuth, now: datetime) -> TelegramUser:
    """The user of ``raw`` if Telegram signed it for this bot within ``auth.max_age_s``.

    Raises:
        InitDataError: malformed, not signed for this bot (``forged``), or ``stale``.
    """
    fields = _fields(raw)
    if not _signed(fields, auth):
        raise InitDataError("forged")
    try:
        auth_date = int(fields.get("auth_date", ""))
        user = json.loads(fields.get("user", ""))
    except ValueError:
        raise InitDataError("malformed") from None
    if not isinstance(user, dict) or type(user.get("id")) is not int or user["id"] <= 0:
        raise InitDataError("malformed")
    age = now.timestamp() - auth_date
    if auth.max_age_s is not None and (age > auth.max_age_s or age < -FUTURE_SKEW_S):
        raise InitDataError("stale")
    language, name = user.get("language_code", ""), user.get("first_name", "")
    return TelegramUser(
        id=user["id"],
        language_code=language if isinstance(language, str) else "",
        first_name=name if isinstance(name, str) else "",
        auth_date=auth_date,
    )


def load_telegram_auth(keys: Mapping[str, str], env: Mapping[str, str]) -> TelegramAuth | None:
    """The page's check from ``TGQR_BOT_TOKEN`` (in ``keys`` or ``env``), else the file named by
    ``TGQR_BOT_TOKEN_FILE``, else ``TGQR_BOT_ID``; ``TGQR_INITDATA_MAX_AGE_S`` bounds the age.
    None when none is set (the page then ignores launch data: no Mini App binding).

    Raises:
        TelegramAuthError: a value is malformed or the file unreadable (never shown).
    """
    token_text = keys.get(BOT_TOKEN_ENV) or env.get(BOT_TOKEN_ENV, "")
    path = env.get(BOT_TOKEN_FILE_ENV, "").strip()
    if not token_text and path:
        try:
            token_text = Path(path).read_text(encoding="utf-8")
        except OSError:
            raise TelegramAuthError(f"cannot read {BOT_TOKEN_FILE_ENV} ({path})") from None
    bot_id_text = env.get(BOT_ID_ENV, "").strip()
    if not token_text.strip() and not bot_id_text:
        return None
    age_text = env.get(INITDATA_MAX_AGE_ENV, "").strip() or str(DEFAULT_MAX_AGE_S)
    if not age_text.isdigit() or not 1 <= int(age_text) <= 86400:
        raise TelegramAuthError(f"{INITDATA_MAX_AGE_ENV} must be 1..86400 seconds")
    if bot_id_text and not bot_id_text.isdigit():
        raise TelegramAuthError(f"{BOT_ID_ENV} must be the bot's numeric id")
    return TelegramAuth(
        token=BotToken(token_text) if token_text.strip() else None,
        bot_id=int(bot_id_text) if bot_id_text else None,
        max_age_s=int(age_text),
    )
