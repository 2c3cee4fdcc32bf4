"""The Mini App launch data check: Telegram's published vector, forgeries, staleness, the
third-party Ed25519 check, and a configuration that never shows the bot token."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from actors.gateway.page import (
    BotToken,
    InitDataError,
    TelegramAuth,
    TelegramAuthError,
    load_telegram_auth,
    validate_init_data,
)

from ._telegram import BOT_TOKEN, init_data

VECTOR_TOKEN = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8"
VECTOR = (
    "query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22"
    "Vladislav%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22"
    "language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%7D&auth_date=1662771648&hash="
    "c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2"
)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
AUTH = TelegramAuth(token=BotToken(BOT_TOKEN))


def reason(raw: str, auth: TelegramAuth = AUTH, now: datetime = NOW) -> str:
    with pytest.raises(InitDataError) as caught:
        validate_init_data(raw, auth, now)
    assert not raw or raw not in str(caught.value)
    return caught.value.reason


def test_the_published_vector_is_valid_with_the_age_check_off() -> None:
    auth = TelegramAuth(token=BotToken(VECTOR_TOKEN), max_age_s=None)
    user = validate_init_data(VECTOR, auth, NOW)
    assert (user.id, user.language_code, user.first_name) == (279058397, "ru", "Vladislav")


def test_the_published_vector_is_stale_with_the_age_check_on() -> None:
    assert reason(VECTOR, TelegramAuth(token=BotToken(VECTOR_TOKEN))) == "stale"


def test_the_published_vector_is_not_another_bots() -> None:
    assert reason(VECTOR, TelegramAuth(token=BotToken(BOT_TOKEN), max_age_s=None)) == "forged"


def test_a_fresh_launch_is_valid_and_any_change_is_refused() -> None:
    raw = init_data(1001, T - 30, lang="ru")
    assert validate_init_data(raw, AUTH, NOW).id == 1001
    assert reason(raw.replace("1001", "1002")) == "forged"  # another user
    assert reason(raw.replace(f"auth_date={T - 30}", f"auth_date={T - 20}")) == "forged"
    assert reason(raw + "&extra=1") == "forged"  # a field added
    assert reason(raw + "&user=x") == "malformed"  # a field repeated
    assert reason(init_data(1001, T - 30, token="999:other")) == "forged"
    assert reason("") == "malformed"
    assert reason("hash=" + "0" * 64) == "forged"


def test_age_bounds() -> None:
    assert reason(init_data(1001, T - 3601)) == "stale"
    assert validate_init_data(init_data(1001, T - 3599), AUTH, NOW).id == 1001
    assert reason(init_data(1001, T + 120)) == "stale"  # from the future
    short = TelegramAuth(token=BotToken(BOT_TOKEN), max_age_s=60)
    assert reason(init_data(1001, T - 61), short) == "stale"


def test_the_hash_with_a_signature_field_is_checked_either_way() -> None:
    signer = Ed25519PrivateKey.generate()
    raw = init_data(1001, T - 5, signer=signer, bot_id=123456789)
    assert validate_init_data(raw, AUTH, NOW).id == 1001


def _public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def test_the_third_party_check_with_only_the_bot_id() -> None:
    telegram = Ed25519PrivateKey.generate()
    auth = TelegramAuth(bot_id=123456789, public_key=_public_hex(telegram))
    raw = init_data(1001, T - 5, token="0:none", signer=telegram, bot_id=123456789)
    assert validate_init_data(raw, auth, NOW).id == 1001
    other_bot = init_data(1001, T - 5, token="0:none", signer=telegram, bot_id=42)
    assert reason(other_bot, auth) == "forged"
    impostor = init_data(1001, T - 5, signer=Ed25519PrivateKey.generate(), bot_id=123456789)
    assert reason(impostor, auth) == "forged"
    assert reason(init_data(1001, T - 5), auth) == "forged"  # no signature at all
    assert reason(raw.replace("1001", "1002"), auth) == "forged"


def test_the_token_is_never_shown(tmp_path: Path) -> None:
    auth = load_telegram_auth({"TGQR_BOT_TOKEN": BOT_TOKEN}, {})
    assert auth is not None
    assert BOT_TOKEN not in repr(auth)
    assert BOT_TOKEN.split(":")[1] not in repr(auth.token)
    with pytest.raises(TelegramAuthError) as caught:
        load_telegram_auth({"TGQR_BOT_TOKEN": "not-a-token-secret"}, {})
    assert "not-a-token-secret" not in str(caught.value)


def test_configuration(tmp_path: Path) -> None:
    assert load_telegram_auth({}, {}) is None
    token_file = tmp_path / "bot.token"
    token_file.write_text(BOT_TOKEN + "\n")
    from_file = load_telegram_auth({}, {"TGQR_BOT_TOKEN_FILE": str(token_file)})
    assert from_file is not None
    assert validate_init_data(init_data(7, T), from_file, NOW).id == 7
    by_id = load_telegram_auth({}, {"TGQR_BOT_ID": "42", "TGQR_INITDATA_MAX_AGE_S": "300"})
    assert by_id is not None
    assert (by_id.token, by_id.bot_id, by_id.max_age_s) == (None, 42, 300)
    for env in (
        {"TGQR_BOT_ID": "x"},
        {"TGQR_BOT_ID": "42", "TGQR_INITDATA_MAX_AGE_S": "0"},
        {"TGQR_BOT_TOKEN_FILE": str(tmp_path / "missing")},
    ):
        with pytest.raises(TelegramAuthError):
            load_telegram_auth({}, env)
