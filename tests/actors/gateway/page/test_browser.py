"""The end user's page in a real browser (Chromium via Playwright) against a running service in
simulator mode: every flow a person goes through, with screenshots of each state.

Nothing sleeps: each step waits for ``<body data-state>`` (or the QR code) with a timeout.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Page

from actors.gateway.page import LinkSigner, load_link_key
from actors.login import Policy
from actors.service import NatsServer

from .conftest import WAIT_MS, Env, decode_qr, open_env, wait_state

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def shown_qr(page: Page) -> str:
    await page.wait_for_selector("#qr svg", state="visible", timeout=WAIT_MS)
    return decode_qr(await page.locator("#qr").screenshot())


async def submit(page: Page, section: str) -> None:
    async with page.expect_navigation(timeout=WAIT_MS):
        await page.click(f'section[data-for="{section}"] button')


async def press_start(page: Page, *, shot: Env | None = None) -> None:
    """Opening the link started nothing: the person presses "Get a code"."""
    await wait_state(page, "idle")
    if shot is not None:
        await shot.shot(page, "idle")
    await submit(page, "idle")


async def test_plain_login_with_the_qr_the_browser_shows(env: Env) -> None:
    """Opening the link starts nothing; "Get a code" does. The QR decoded from the screen is the
    tenant's real token: the phone scans it, the page says "scanned" and then who logged in; a
    reload shows the outcome, not a new QR."""
    url = await env.link("alice")
    page = await env.open(url)
    await press_start(page, shot=env)
    await wait_state(page, "pending")
    shown = await shown_qr(page)
    issued = [e["url"] for e in await env.events("alice") if e["type"] == "QrIssued"]
    assert shown == issued[-1]
    assert re.fullmatch(r"\d:\d\d", await page.text_content("#left") or "")
    await env.shot(page, "pending")
    dark = await env.open(url, dark=True)
    await dark.wait_for_selector("#qr svg", timeout=WAIT_MS)
    await env.shot(dark, "pending-dark")
    await dark.context.close()

    assert env.service.sim is not None
    env.service.sim.flood_next("auth.exportLoginToken", 2)  # holds "scanned" for 2 s
    scan = await env.request("tgqr.sim.scan", {"url": shown, "user_id": 2001})
    assert scan["ok"], scan
    await wait_state(page, "scanned")
    assert await page.is_visible("text=Scanned: confirm on your phone")
    await env.shot(page, "scanned")
    await wait_state(page, "authorized")
    assert await page.text_content('[data-field="user"]') == "2001"
    assert await page.is_hidden("#countdown")
    await env.shot(page, "authorized")

    await page.reload()
    await wait_state(page, "authorized")
    types = [e["type"] for e in await env.events("alice")]
    assert types.count("LoginStarted") == 1


async def test_two_factor_wrong_then_right(env: Env) -> None:
    """The 2FA form shows the tries left after a wrong password; the right one logs in; the
    passwords are in no event."""
    page = await env.open(await env.link("bob"))
    await press_start(page)
    await page.wait_for_selector("#qr svg", timeout=WAIT_MS)
    scan = {"tenant": "bob", "user_id": 2002, "password": "correct horse"}
    assert (await env.request("tgqr.sim.scan", scan))["ok"]
    await env.wait_for("bob", "PasswordRequired")
    await wait_state(page, "password_required")
    await page.wait_for_function("document.activeElement.id === 'password'", timeout=WAIT_MS)
    await env.shot(page, "password")

    await page.fill("#password", "battery staple")
    await submit(page, "password_required")
    await wait_state(page, "password_required")
    tries = page.locator('[data-field="tries"]')
    await tries.wait_for(state="visible", timeout=WAIT_MS)
    assert await tries.text_content() == "Wrong password. 4 tries left."
    await env.shot(page, "password-wrong")

    await page.fill("#password", "correct horse")
    await submit(page, "password_required")
    await wait_state(page, "authorized")
    assert await page.text_content('[data-field="user"]') == "2002"
    stored = json.dumps(await env.events("bob"))
    assert "correct horse" not in stored
    assert "battery staple" not in stored


async def test_the_qr_is_replaced_without_a_reload(tmp_path: Path, nats_server: NatsServer) -> None:
    """Short-lived tokens: each QrIssued replaces the code in place (same document), and the
    new code is the one to scan."""
    async with open_env(tmp_path, nats_server, sim_token_ttl_s=6.0) as env:
        page = await env.open(await env.link("carol"))
        await press_start(page)
        first = await shown_qr(page)
        before = await page.inner_html("#qr")
        await page.evaluate("window.sameDocument = true")
        await page.wait_for_function(
            "(old) => { const box = document.querySelector('#qr');"
            " return box.querySelector('svg') !== null && box.innerHTML !== old; }",
            arg=before,
            timeout=WAIT_MS,
        )
        assert await page.evaluate("window.sameDocument === true")
        second = decode_qr(await page.locator("#qr").screenshot())
        assert second != first
        issued = [e["url"] for e in await env.events("carol") if e["type"] == "QrIssued"]
        assert second in issued
        assert issued.index(second) > issued.index(first)
        assert (await env.request("tgqr.sim.scan", {"url": second, "user_id": 2003}))["ok"]
        await wait_state(page, "authorized")


async def test_expiry_and_a_new_code(tmp_path: Path, nats_server: NatsServer) -> None:
    """At the deadline the page says the code expired (a reload too: no silent new attempt);
    "Get a new code" starts attempt 2."""
    async with open_env(tmp_path, nats_server, policy=Policy(qr_ttl_s=3)) as env:
        url = await env.link("dave")
        page = await env.open(url)
        await press_start(page)
        await wait_state(page, "pending")
        await wait_state(page, "expired")
        assert await page.is_hidden("#countdown")
        await env.shot(page, "expired")
        await page.reload()
        await wait_state(page, "expired")
        assert [e["type"] for e in await env.events("dave")].count("LoginStarted") == 1

        await submit(page, "expired")
        await wait_state(page, "pending")
        await page.wait_for_selector("#qr svg", timeout=WAIT_MS)
        started = [e for e in await env.events("dave") if e["type"] == "LoginStarted"]
        assert [e["attempt"] for e in started] == [1, 2]


async def test_a_failure_in_plain_words(env: Env) -> None:
    """The wrong account (an expected user was set): "failed" with the reason, and a retry."""
    start = await env.request("tgqr.cmd.erin.start", {"expected_user_id": 9999})
    assert start["ok"], start
    page = await env.open(await env.link("erin"))
    await page.wait_for_selector("#qr svg", timeout=WAIT_MS)
    assert (await env.request("tgqr.sim.scan", {"tenant": "erin", "user_id": 2004}))["ok"]
    await wait_state(page, "failed")
    reason = await page.text_content('section[data-for="failed"] [data-field="reason"]')
    assert reason == "A different Telegram account than the expected one was used."
    assert await page.get_by_role("button", name="Try again").is_visible()
    await env.shot(page, "failed")


async def test_bad_and_expired_links(env: Env) -> None:
    """A tampered link gets 403, an expired one 410, each a clear page; nothing is started."""
    url = await env.link("frank", ttl_s=60)
    head, _, token = url.rpartition("/")
    tampered = f"{head}/{token[:-4]}{'AAAA' if not token.endswith('AAAA') else 'BBBB'}"
    page = await env.open(tampered)
    await wait_state(page, "invalid_link")
    assert await page.is_visible("text=This link is not valid")
    await env.shot(page, "bad-link")
    response = await page.goto(tampered)
    assert response is not None
    assert response.status == 403

    assert env.service.page is not None
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    old = LinkSigner(
        load_link_key(env.data_dir), env.service.page.public_url, lambda: an_hour_ago
    ).issue("frank", 60)
    expired = await env.open(old.url)
    await wait_state(expired, "link_expired")
    response = await expired.goto(old.url)
    assert response is not None
    assert response.status == 410
    await env.shot(expired, "expired-link")
    assert await env.events("frank") == []


async def test_without_javascript(env: Env) -> None:
    """No script: the QR is in the page, it reloads itself while the login runs, and the 2FA
    form is a plain POST."""
    page = await env.open(await env.link("grace"), js=False)
    await press_start(page)
    await wait_state(page, "pending")
    html = await page.content()
    assert '<meta http-equiv="refresh"' in html
    await env.wait_for("grace", "QrIssued")
    await page.reload()
    shown = await shown_qr(page)
    scan = {"url": shown, "user_id": 2005, "password": "pw 2005"}
    assert (await env.request("tgqr.sim.scan", scan))["ok"]
    await env.wait_for("grace", "PasswordRequired")
    await page.reload()
    await wait_state(page, "password_required")
    await page.fill("#password", "pw 2005")
    await submit(page, "password_required")
    await wait_state(page, "authorized")
    assert "refresh" not in await page.content()
