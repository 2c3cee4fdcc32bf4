"""The page as a Mini App, on fakes: launch data checked by the server binds the logins the page
starts to the Telegram user (the app's own expected user wins); anything else starts nothing.
Languages and the phone notice."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from actors.gateway.page import BotToken, TelegramAuth, build_app

from ._fakes import BASE, SAME_ORIGIN, World, csrf_of, expired, path, started, state_of
from ._telegram import BOT_TOKEN, init_data

AUTH = TelegramAuth(token=BotToken(BOT_TOKEN))


@pytest.fixture
def tg(w: World) -> Iterator[TestClient]:
    """The page app of ``w`` with the Mini App check on."""
    app = build_app(replace(w.deps, telegram=AUTH))
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        yield c


def now_s(w: World) -> int:
    return int(w.clock().timestamp())


def launch(c: TestClient, link: str, raw: str, **headers: str) -> tuple[int, str]:
    """The script's POST of the launch data: (status, where it redirects or the page)."""
    csrf = csrf_of(c.get(link).text)
    r = c.post(
        f"{link}/telegram",
        data={"csrf": csrf, "init_data": raw},
        headers=SAME_ORIGIN | headers,
    )
    return r.status_code, r.headers.get("location", r.text)


def start(c: TestClient, page_url: str) -> str:
    html = c.get(page_url).text
    bind = re.search(r'name="tg" value="([^"]+)"', html)
    form = {"csrf": csrf_of(html)} | ({"tg": bind.group(1)} if bind else {})
    link = page_url.split("?", maxsplit=1)[0]
    r = c.post(f"{link}/start", data=form, headers=SAME_ORIGIN)
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def test_the_telegram_user_becomes_the_expected_user(w: World, tg: TestClient) -> None:
    link = path(w)
    status, where = launch(tg, link, init_data(1001, now_s(w) - 10))
    assert status == 303
    assert where.startswith(f"{link}?tg=")
    assert w.bus.commands == []  # opening it starts nothing, as in a browser
    page = tg.get(where).text
    assert 'data-field="bound"' in page
    assert "<b>1001</b>" in page
    assert "data-telegram=" not in page  # sent once
    back = start(tg, where)
    assert "tg=" in back  # the pass stays with the page
    assert w.bus.commands == [("alice", "start", {"expected_user_id": 1001})]


def test_the_apps_expected_user_wins(w: World, tg: TestClient) -> None:
    w.log.add(started("alice", expected_user_id=9))
    w.log.add(expired("alice"))
    link = path(w)
    _, where = launch(tg, link, init_data(1001, now_s(w)))
    page = tg.get(where).text
    assert 'data-field="app-wins"' in page
    start(tg, where)
    assert w.bus.commands == [("alice", "start", {"expected_user_id": 9})]


@pytest.mark.parametrize("kind", ["tampered", "stale", "other bot", "garbage"])
def test_bad_launch_data_starts_nothing(w: World, tg: TestClient, kind: str) -> None:
    fresh = init_data(1001, now_s(w))
    raw = {
        "tampered": fresh.replace("1001", "1002"),
        "stale": init_data(1001, now_s(w) - 7200),
        "other bot": init_data(1001, now_s(w), token="42:other"),
        "garbage": "user=1&hash=zz",
    }[kind]
    status, page = launch(tg, path(w), raw)
    assert status == 403
    assert state_of(page) == "telegram_refused"
    assert w.bus.commands == []


def test_a_forged_or_borrowed_pass_is_refused(w: World, tg: TestClient) -> None:
    link, other = path(w), path(w, "bob")
    _, where = launch(tg, other, init_data(1001, now_s(w)))
    borrowed = where.split("tg=")[1]
    for bind in (borrowed, "MTAwMXxydQ.AAAAAAAAAAAAAAAAAAAAAA"):
        assert tg.get(f"{link}?tg={bind}").status_code == 403
        html = tg.get(link).text
        r = tg.post(f"{link}/start", data={"csrf": csrf_of(html), "tg": bind}, headers=SAME_ORIGIN)
        assert r.status_code == 403
        assert state_of(r.text) == "telegram_refused"
    assert w.bus.commands == []


def test_launch_data_needs_the_check_configured(w: World, client: TestClient) -> None:
    link = path(w)
    assert "data-telegram=" not in client.get(link).text
    status, _ = launch(client, link, init_data(1001, now_s(w)))
    assert status == 400
    assert w.bus.commands == []


def test_languages(w: World, tg: TestClient) -> None:
    link = path(w)
    assert 'lang="en"' in tg.get(link).text
    ru = tg.get(link, headers={"accept-language": "de-DE, ru;q=0.8, en;q=0.5"}).text
    assert 'lang="ru"' in ru
    assert "Получить код" in ru
    # Telegram's language_code wins over the browser's
    _, where = launch(tg, link, init_data(1001, now_s(w), lang="ru"))
    assert "Вход через Telegram" in tg.get(where, headers={"accept-language": "en"}).text
    # The link's own language when the browser names neither
    ru_link = f"/l/{w.signer.issue('alice', 600, 'ru').token}"
    assert 'lang="ru"' in tg.get(ru_link, headers={"accept-language": "de"}).text
    assert 'lang="en"' in tg.get(ru_link, headers={"accept-language": "en-GB"}).text
    # Error pages too
    error = tg.get("/l/nope", headers={"accept-language": "ru"})
    assert error.status_code == 403
    assert "Ссылка недействительна" in error.text


def test_the_phone_notice(w: World, tg: TestClient) -> None:
    link = path(w)
    phone = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36"
    html = tg.get(link, headers={"user-agent": phone}).text
    assert 'data-field="phone"' in html
    assert f'value="{BASE}{link}"' in html
    desktop = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130 Safari/537.36"
    assert 'data-field="phone"' not in tg.get(link, headers={"user-agent": desktop}).text


def test_the_bot_token_stays_out_of_the_page_process_environment() -> None:
    """``tgqr up`` hands the token over through the key pipe (read once), never the child's
    environment; the check's other settings, not secrets, go there."""
    from actors.service import page_environment

    env = page_environment(
        {
            "TGQR_BOT_TOKEN": BOT_TOKEN,
            "TGQR_BOT_TOKEN_FILE": "/run/secrets/bot",
            "TGQR_BOT_ID": "42",
            "TGQR_INITDATA_MAX_AGE_S": "600",
        }
    )
    assert "TGQR_BOT_TOKEN" not in env
    assert BOT_TOKEN not in repr(env)
    assert env["TGQR_BOT_TOKEN_FILE"] == "/run/secrets/bot"
    assert env["TGQR_BOT_ID"] == "42"
    assert env["TGQR_INITDATA_MAX_AGE_S"] == "600"
