"""The page app below the browser (Starlette's TestClient, fakes for the log and the bus):
headers and CSP on every response, refused links and forms send nothing, CSRF, rate limits
per link, the live stream, and errors as pages."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from actors.gateway.page import CSP, build_app
from events import Event, LoggedOut, LoginCancelled, LoginFailed

from ._fakes import (
    BASE,
    SAME_ORIGIN,
    T0,
    World,
    authorized,
    csrf_of,
    expired,
    path,
    qr,
    started,
    state_of,
    world,
)

SECURITY = {
    "content-security-policy": CSP,
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def test_csp_is_strict() -> None:
    """Scripts and styles only as files from this origin; framing by Telegram's web client."""
    assert "script-src 'self'" in CSP
    assert "style-src 'self'" in CSP
    assert "default-src 'none'" in CSP
    assert "unsafe" not in CSP
    assert "frame-ancestors 'self' https://web.telegram.org" in CSP
    assert "require-trusted-types-for 'script'" in CSP
    # Forms post to this origin only, and no <base> can redirect relative URLs elsewhere.
    assert "form-action 'self'" in CSP.split("; ")
    assert "base-uri 'none'" in CSP.split("; ")


@pytest.mark.parametrize(
    "url", ["/", "/static/page.js", "/static/page.css", "/l/garbage", "/nowhere", "/static/x"]
)
def test_every_response_has_the_security_headers(client: TestClient, url: str) -> None:
    response = client.get(url)
    for name, value in SECURITY.items():
        assert response.headers[name] == value, (url, name)
    assert "server" not in response.headers
    assert "strict-transport-security" not in response.headers  # plain http: meaningless


def test_https_pages_carry_hsts() -> None:
    """Behind an https public URL every response asks browsers to keep to https."""
    w = world()
    deps = replace(w.deps, https=True)
    with TestClient(build_app(deps), base_url=BASE, raise_server_exceptions=False) as client:
        for url in ("/", "/l/garbage", path(w)):
            response = client.get(url)
            assert response.headers["strict-transport-security"] == "max-age=31536000", url
            assert response.headers["content-security-policy"] == CSP


def test_the_page_has_no_inline_code(w: World, client: TestClient) -> None:
    """No inline script or style, no third-party asset: the CSP needs no exception."""
    response = client.get(path(w))
    assert response.status_code == 200
    html = response.text
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/page.js" defer>']
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("history", ["fresh", "expired", "failed", "cancelled", "logged_out"])
def test_opening_a_link_starts_nothing(
    w: World, client: TestClient, method: str, history: str
) -> None:
    """Link previewers and mail scanners open links too: only the button starts a login."""
    url = path(w)
    w.clock.advance(1)
    if history != "fresh":
        w.log.add(started("alice", at=w.clock()))
        ended: dict[str, Event] = {
            "expired": expired("alice", at=w.clock()),
            "failed": LoginFailed(tenant="alice", attempt=1, at=w.clock(), reason="crashed"),
            "cancelled": LoginCancelled(tenant="alice", attempt=1, at=w.clock()),
            "logged_out": LoggedOut(tenant="alice", attempt=1, at=w.clock(), reason="command"),
        }
        w.log.add(ended[history])
    for _ in range(3):
        response = client.request(method, url)
        assert response.status_code == 200
    assert w.bus.commands == []
    html = client.get(url).text
    state = "idle" if history == "fresh" else history
    assert state_of(html) == state
    assert f'<section data-for="{state}"><' in html
    section = html.split(f'<section data-for="{state}">')[1].split("</section>")[0]
    assert f'<form method="post" action="{url}/start" class="start">' in section


def test_the_button_starts_the_login(w: World, client: TestClient) -> None:
    url = path(w)
    csrf = csrf_of(client.get(url).text)
    response = client.post(f"{url}/start", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert response.status_code == 303
    assert response.headers["location"] == url
    assert w.bus.commands == [("alice", "start", {})]
    assert state_of(client.get(url).text) == "pending"


def test_the_button_keeps_the_ownership_expectation(w: World, client: TestClient) -> None:
    """The attack: an app starts erin expecting user 1001; the attempt expires; the page's new
    attempt must still expect 1001, or whoever scans (user 4242) becomes erin's account."""
    w.log.add(started("erin", expected_user_id=1001))
    w.log.add(expired("erin"))
    url = path(w, "erin")
    csrf = csrf_of(client.get(url).text)
    response = client.post(f"{url}/start", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert response.status_code == 303
    assert w.bus.commands == [("erin", "start", {"expected_user_id": 1001})]


def test_a_quarantined_tenant_gets_no_new_login(w: World, client: TestClient) -> None:
    w.log.add(started("alice"))
    w.log.add(expired("alice"), mac="0" * 64)
    url = path(w)
    html = client.get(url).text
    assert state_of(html) == "quarantined"
    response = client.post(f"{url}/start", data={"csrf": csrf_of(html)}, headers=SAME_ORIGIN)
    assert response.headers["location"] == f"{url}?n=tenant_quarantined"
    assert w.bus.commands == []


def test_an_authorized_tenant_sees_the_outcome(w: World, client: TestClient) -> None:
    w.log.add(started("alice", at=T0 - timedelta(minutes=5)))
    w.log.add(authorized("alice", 4242))
    html = client.get(path(w)).text
    assert state_of(html) == "authorized"
    assert '<b data-field="user">4242</b>' in html
    assert w.bus.commands == []


def test_an_attempt_that_ended_under_this_link_shows_its_outcome(
    w: World, client: TestClient
) -> None:
    """A reload after the expiry shows "expired" with its button, not a silent new code."""
    url = path(w)
    w.clock.advance(1)
    w.log.add(started("alice", at=w.clock()))
    w.log.add(expired("alice", at=w.clock()))
    html = client.get(url).text
    assert state_of(html) == "expired"
    assert "Get a new code" in html
    assert w.bus.commands == []


def test_the_qr_is_inline_svg(w: World, client: TestClient) -> None:
    w.log.add(started("alice"))
    w.log.add(qr("alice"))
    html = client.get(path(w)).text
    assert '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ' in html
    assert '<meta http-equiv="refresh"' in html  # inside <noscript>: for pages without JS


@pytest.mark.parametrize("mangle", [lambda t: t[:-3] + "AAA", lambda t: "X" + t, lambda t: t + "."])
def test_a_tampered_link_gets_403_and_sends_nothing(w: World, client: TestClient, mangle) -> None:  # type: ignore[no-untyped-def]
    token = w.signer.issue("alice").token
    for suffix in ("", "/events"):
        response = client.get(f"/l/{mangle(token)}{suffix}")
        assert response.status_code == 403
        assert state_of(response.text) == "invalid_link"
    response = client.post(f"/l/{mangle(token)}/start", data={"csrf": "x"})
    assert response.status_code == 403
    assert w.bus.commands == []


def test_an_expired_link_gets_410_and_sends_nothing(w: World, client: TestClient) -> None:
    url = path(w, ttl=10)
    w.clock.advance(11)
    response = client.get(url)
    assert response.status_code == 410
    assert state_of(response.text) == "link_expired"
    assert "expired" in response.text
    assert w.bus.commands == []


def test_unknown_notices_are_not_echoed(w: World, client: TestClient) -> None:
    html = client.get(path(w) + "?n=<script>alert(1)</script>").text
    assert "alert" not in html


def test_new_code_starts_a_new_attempt(w: World, client: TestClient) -> None:
    url = path(w)
    w.clock.advance(1)
    w.log.add(started("alice", at=w.clock()))
    w.log.add(expired("alice", at=w.clock()))
    csrf = csrf_of(client.get(url).text)
    response = client.post(f"{url}/start", data={"csrf": csrf})
    assert response.status_code == 303
    assert [v for _, v, _ in w.bus.commands] == ["start"]
    assert state_of(client.get(url).text) == "pending"


def test_rate_limits_are_per_link() -> None:
    w = world(limits={"view": 2, "events": 2, "start": 2, "password": 2})
    with TestClient(build_app(w.deps), base_url=BASE) as client:
        url, other = path(w), path(w)
        assert client.get(url).status_code == 200
        assert client.get(url).status_code == 200
        limited = client.get(url)
        assert limited.status_code == 429
        assert state_of(limited.text) == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert client.get(other).status_code == 200


def test_failures_are_pages_not_tracebacks(w: World, client: TestClient) -> None:
    w.bus.fail = True
    url = path(w)
    csrf = csrf_of(client.get(url).text)
    response = client.post(f"{url}/start", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert response.status_code == 500
    assert state_of(response.text) == "error"
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    assert response.headers["content-security-policy"] == CSP


def test_an_unavailable_log_is_a_503_page(w: World, client: TestClient) -> None:
    w.log.unavailable = True
    response = client.get(path(w))
    assert response.status_code == 503
    assert state_of(response.text) == "unavailable"
    assert w.bus.commands == []


def test_the_live_stream_sends_the_state_and_ends_with_the_link() -> None:
    """``state`` first (the whole view), keep-alive comments, ``end`` once the link expires."""
    w = world(keepalive_s=0.02)
    w.log.add(started("alice"))
    w.log.add(qr("alice"))
    url = path(w, ttl=60)
    with (
        TestClient(build_app(w.deps), base_url=BASE) as client,
        client.stream("GET", f"{url}/events") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        lines = response.iter_lines()
        assert next(lines) == "retry: 3000"
        assert next(lines) == ""
        assert next(lines) == "event: state"
        data = next(lines)
        assert data.startswith('data: {"state":"pending","attempt":1,')
        assert '"qr":"<svg xmlns=' in data
        w.clock.advance(61)
        rest = []
        for line in lines:
            rest.append(line)
            if line.startswith("data:") and rest[-2] == "event: end":
                break
        assert 'data: {"reason":"link_expired"}' in rest
