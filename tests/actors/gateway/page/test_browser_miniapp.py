"""The page as a Telegram Mini App in a real browser (Chromium) against a running service in
simulator mode: launch data signed for user A binds the login to A (B's scan is refused, A's
succeeds), tampered and stale launch data start nothing, Telegram's theme and its changes are
followed, the page tells Telegram it is ready; Russian and English; the phone notice.

Telegram's client is played by the URL fragment it appends and by a ``TelegramWebviewProxy``
that records the events the page posts (what Telegram's apps provide).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Page

from actors.service import NatsServer

from ._telegram import BOT_TOKEN, THEME, fragment, init_data
from .conftest import MOBILE, WAIT_MS, Env, decode_qr, open_env, wait_state

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

A, B = 3001, 3002
PROXY = """
window.__tgEvents = [];
window.TelegramWebviewProxy = {
  postEvent: function (eventType, eventData) { window.__tgEvents.push(eventType); },
};
"""
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0 Mobile Safari/537.36"
)


@pytest.fixture
async def tg_env(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    """The service with ``TGQR_BOT_TOKEN`` set: its page process checks launch data."""
    monkeypatch.setenv("TGQR_BOT_TOKEN", BOT_TOKEN)
    async with open_env(tmp_path, nats_server) as opened:
        yield opened


async def open_in(env: Env, url: str, *, locale: str = "en-US", **context: Any) -> Page:
    """``url`` in a fresh phone-sized context with Telegram's webview proxy (see the module)."""
    assert env.browser is not None
    ctx = await env.browser.new_context(viewport=MOBILE, locale=locale, **context)  # type: ignore[arg-type]
    await ctx.add_init_script(PROXY)
    page = await ctx.new_page()

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Trusted Type" in message.text:
            env.problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: env.problems.append(f"page error: {error}"))
    await page.goto(url)
    return page


async def submit(page: Page, section: str) -> None:
    async with page.expect_navigation(timeout=WAIT_MS):
        await page.click(f'section[data-for="{section}"] button')


async def shown_qr(page: Page) -> str:
    await page.wait_for_selector("#qr svg", state="visible", timeout=WAIT_MS)
    return decode_qr(await page.locator("#qr").screenshot())


async def background(page: Page, selector: str) -> str:
    return str(await page.eval_on_selector(selector, "e => getComputedStyle(e).backgroundColor"))


async def test_a_mini_app_launch_binds_the_login_to_its_user(tg_env: Env) -> None:
    """A Russian-speaking user A opens the link in Telegram: the page is in Russian, in A's
    theme, says only A can finish, and tells Telegram it is ready. B's scan ends in
    ownership_mismatch; after "try again", A's scan (with 2FA) logs in."""
    env = tg_env
    url = await env.link("tanya")
    page = await open_in(env, url + fragment(init_data(A, int(time.time()) - 5, lang="ru")))
    await page.wait_for_selector('[data-field="bound"]', timeout=WAIT_MS)
    await wait_state(page, "idle")
    assert await page.get_attribute("html", "lang") == "ru"
    assert "<b>3001</b>" in await page.inner_html('[data-field="bound"]')
    assert await background(page, "body") == "rgb(14, 22, 33)"  # secondary_bg_color
    assert await background(page, "main") == "rgb(23, 33, 43)"  # bg_color
    events = await page.evaluate("window.__tgEvents")
    assert "web_app_ready" in events
    assert "web_app_expand" in events
    await env.shot(page, "ru-idle")
    assert await env.events("tanya") == []  # opening it started nothing

    await submit(page, "idle")
    await wait_state(page, "pending")
    assert await background(page, "body") == "rgb(14, 22, 33)"  # kept after the form
    assert await page.is_visible("text=Подключить устройство")
    await env.shot(page, "ru-pending")
    started = [e for e in await env.events("tanya") if e["type"] == "LoginStarted"]
    assert [e["expected_user_id"] for e in started] == [A]

    assert (await env.request("tgqr.sim.scan", {"url": await shown_qr(page), "user_id": B}))["ok"]
    await wait_state(page, "failed")
    reason = await page.text_content('section[data-for="failed"] [data-field="reason"]')
    assert reason == "Использован не тот аккаунт Telegram, который ожидался."
    await env.shot(page, "ru-failed")
    failed = [e for e in await env.events("tanya") if e["type"] == "LoginFailed"]
    assert failed[-1]["reason"] == "ownership_mismatch"

    await submit(page, "failed")
    await wait_state(page, "pending")
    scan = {"url": await shown_qr(page), "user_id": A, "password": "верный пароль"}
    assert (await env.request("tgqr.sim.scan", scan))["ok"]
    await wait_state(page, "password_required")
    await env.shot(page, "ru-password")
    await page.fill("#password", "верный пароль")
    await submit(page, "password_required")
    await wait_state(page, "authorized")
    assert await page.text_content('[data-field="user"]') == str(A)
    await env.shot(page, "ru-authorized")
    started = [e for e in await env.events("tanya") if e["type"] == "LoginStarted"]
    assert [e["expected_user_id"] for e in started] == [A, A]

    # Telegram switches the theme: the page follows.
    await page.evaluate(
        "window.Telegram.WebView.receiveEvent('theme_changed',"
        " {theme_params: {secondary_bg_color: '#ffffff', bg_color: '#f0f0f0'}})"
    )
    assert await background(page, "body") == "rgb(255, 255, 255)"


@pytest.mark.parametrize("kind", ["tampered", "stale"])
async def test_bad_launch_data_is_refused(tg_env: Env, kind: str) -> None:
    """Changed or old launch data: a clear page (in the browser's language), nothing started,
    and the Mini App's button never shows."""
    env = tg_env
    url = await env.link("ivan")
    now = int(time.time())
    raw = (
        init_data(A, now).replace(str(A), str(B), 1)
        if kind == "tampered"
        else init_data(A, now - 7200)
    )
    page = await open_in(env, url + fragment(raw))
    await wait_state(page, "telegram_refused")
    assert await page.is_visible("text=Telegram could not confirm who you are")
    events = await page.evaluate("window.__tgEvents")
    assert "web_app_ready" in events  # Telegram stops its spinner on the error page too
    if kind == "tampered":
        await env.shot(page, "telegram-refused")
    assert await env.events("ivan") == []


async def test_english_and_russian_from_the_browser(tg_env: Env) -> None:
    """Outside Telegram the browser's language decides; error pages follow it too."""
    env = tg_env
    url = await env.link("olga")
    english = await open_in(env, url)
    await wait_state(english, "idle")
    assert await english.is_visible("text=Get a code")
    russian = await open_in(env, url, locale="ru-RU")
    await wait_state(russian, "idle")
    assert await russian.is_visible("text=Получить код")
    await russian.goto(url[:-6] + "AAAAAA")
    await wait_state(russian, "invalid_link")
    assert await russian.is_visible("text=Ссылка недействительна")
    await env.shot(russian, "ru-bad-link")


async def test_on_the_phone_that_would_scan(tg_env: Env) -> None:
    """Opened on a phone: the page says this phone cannot scan its own screen and offers the
    link for a computer (copied with one tap)."""
    env = tg_env
    url = await env.link("petr")
    page = await open_in(env, url, user_agent=PHONE_UA, is_mobile=True, has_touch=True)
    await wait_state(page, "idle")
    assert await page.is_visible('[data-field="phone"]')
    assert await page.input_value("input.link") == url
    assert await page.is_visible("button.copy")
    await env.shot(page, "phone")
    assert THEME  # the theme is Telegram's only: none applied here
    assert await background(page, "body") != "rgb(14, 22, 33)"
