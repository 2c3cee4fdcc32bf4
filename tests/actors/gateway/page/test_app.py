"""The page app below the browser (Starlette's TestClient, fakes for the log and the bus):
headers and CSP on every response, refused links and forms send nothing, CSRF, rate limits
per link, the live stream, and errors as pages."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from actors.gateway.page import CSP, build_app
from events import PasswordRequired, Scanned

from ._fakes import BASE, T0, World, authorized, expired, qr, started, world

SECURITY = {
    "content-security-policy": CSP,
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


@pytest.fixture
def w() -> World:
    return world()


@pytest.fixture
def client(w: World) -> Iterator[TestClient]:
    with TestClient(
        build_app(w.deps), base_url=BASE, follow_redirects=False, raise_server_exceptions=False
    ) as c:
        yield c


def path(w: World, tenant: str = "alice", ttl: int = 600) -> str:
    return f"/l/{w.signer.issue(tenant, ttl).token}"


def state_of(html: str) -> str:
    found = re.search(r'<body data-state="([a-z_]+)"', html)
    assert found, html[:400]
    return found.group(1)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_csp_is_strict() -> None:
    """Scripts and styles only as files from this origin; framing by Telegram's web client."""
    assert "script-src 'self'" in CSP
    assert "style-src 'self'" in CSP
    assert "default-src 'none'" in CSP
    assert "unsafe" not in CSP
    assert "frame-ancestors 'self' https://web.telegram.org" in CSP
    assert "require-trusted-types-for 'script'" in CSP


@pytest.mark.parametrize(
    "url", ["/", "/static/page.js", "/static/page.css", "/l/garbage", "/nowhere", "/static/x"]
)
def test_every_response_has_the_security_headers(client: TestClient, url: str) -> None:
    response = client.get(url)
    for name, value in SECURITY.items():
        assert response.headers[name] == value, (url, name)
    assert "server" not in response.headers


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


def test_a_fresh_link_starts_the_login_once(w: World, client: TestClient) -> None:
    url = path(w)
    first = client.get(url)
    assert state_of(first.text) == "pending"
    assert [(t, v) for t, v, _ in w.bus.commands] == [("alice", "start")]
    assert state_of(client.get(url).text) == "pending"
    assert len(w.bus.commands) == 1  # already active: nothing sent


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


def password_page(w: World, client: TestClient) -> tuple[str, str]:
    url = path(w)
    w.log.add(started("alice"))
    w.log.add(Scanned(tenant="alice", attempt=1, at=T0))
    w.log.add(PasswordRequired(tenant="alice", attempt=1, at=T0, hint="the usual"))
    html = client.get(url).text
    assert state_of(html) == "password_required"
    assert "Hint: <span>the usual</span>" in html
    return url, csrf_of(html)


def test_the_password_goes_through_the_command_path(
    w: World, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A valid form sends ``password`` and redirects (303) back; the password is not logged."""
    caplog.set_level(logging.DEBUG)
    url, csrf = password_page(w, client)
    response = client.post(
        f"{url}/password",
        data={"csrf": csrf, "password": "hunter2 secret"},
        headers={"origin": BASE, "sec-fetch-site": "same-origin"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == url
    assert w.bus.commands == [("alice", "password", {"password": "hunter2 secret"})]
    assert "hunter2" not in caplog.text
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "tenant=alice page: password sent" in ours
    assert url.split("/")[-1] not in ours  # nor the link token (the test client logs it)


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({"password": "pw"}, {}),
        ({"password": "pw", "csrf": "forged.AAAAAAAAAAAAAAAAAAAAAA"}, {}),
        ({"password": "pw", "csrf": "CSRF"}, {"origin": "https://evil.example"}),
        ({"password": "pw", "csrf": "CSRF"}, {"sec-fetch-site": "cross-site"}),
        ({"password": "pw", "csrf": "CSRF"}, {"sec-fetch-site": "same-site"}),
        ({"password": "pw", "csrf": "CSRF"}, {"origin": "null", "sec-fetch-site": "cross-site"}),
    ],
)
def test_a_form_without_our_csrf_token_or_origin_is_refused(
    w: World, client: TestClient, form: dict[str, str], headers: dict[str, str]
) -> None:
    url, csrf = password_page(w, client)
    data = {k: (csrf if v == "CSRF" else v) for k, v in form.items()}
    response = client.post(f"{url}/password", data=data, headers=headers)
    assert response.status_code == 403
    assert state_of(response.text) == "form_expired"
    assert w.bus.commands == []


def test_a_same_origin_post_under_no_referrer_passes(w: World, client: TestClient) -> None:
    """``Referrer-Policy: no-referrer`` makes browsers send ``Origin: null`` on our own forms."""
    url, csrf = password_page(w, client)
    headers = {"origin": "null", "sec-fetch-site": "same-origin"}
    response = client.post(
        f"{url}/password", data={"csrf": csrf, "password": "pw"}, headers=headers
    )
    assert response.status_code == 303
    assert [v for _, v, _ in w.bus.commands] == ["password"]


def test_another_links_csrf_token_is_refused(w: World, client: TestClient) -> None:
    url, _ = password_page(w, client)
    other_csrf = csrf_of(client.get(path(w)).text)
    response = client.post(f"{url}/password", data={"csrf": other_csrf, "password": "pw"})
    assert response.status_code == 403
    assert w.bus.commands == []


def test_an_empty_password_is_not_sent(w: World, client: TestClient) -> None:
    url, csrf = password_page(w, client)
    response = client.post(f"{url}/password", data={"csrf": csrf, "password": ""})
    assert response.status_code == 303
    assert response.headers["location"] == f"{url}?n=empty_password"
    assert "Enter your password." in client.get(response.headers["location"]).text
    assert w.bus.commands == []


def test_a_refused_command_comes_back_as_a_notice(w: World, client: TestClient) -> None:
    url, csrf = password_page(w, client)
    w.bus.replies["password"] = {"ok": False, "error": {"code": "rate_limited", "message": "x"}}
    response = client.post(f"{url}/password", data={"csrf": csrf, "password": "pw"})
    assert response.headers["location"] == f"{url}?n=rate_limited"
    assert "Too many tries" in client.get(response.headers["location"]).text


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
    response = client.get(path(w))
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
