"""The page's forms (the start button and the 2FA password): each is refused, and sends
nothing, without this link's CSRF token, from another site, as another content type or over the
size limit; the same form from our own page passes (the control)."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from actors.gateway.page._app import MAX_FORM
from events import PasswordRequired, Scanned

from ._fakes import BASE, SAME_ORIGIN, T0, World, csrf_of, path, started, state_of


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


def start_page(w: World, client: TestClient) -> tuple[str, str]:
    url = path(w)
    html = client.get(url).text
    assert state_of(html) == "idle"
    return url, csrf_of(html)


FORMS = {"password": password_page, "start": start_page}
REFUSED = [
    ({}, {}),
    ({"csrf": "forged.AAAAAAAAAAAAAAAAAAAAAA"}, {}),
    ({"csrf": "CSRF"}, {"origin": "https://evil.example"}),
    ({"csrf": "CSRF"}, {"sec-fetch-site": "cross-site"}),
    ({"csrf": "CSRF"}, {"sec-fetch-site": "same-site"}),
    ({"csrf": "CSRF"}, {"origin": "null", "sec-fetch-site": "cross-site"}),
    ({"csrf": "CSRF"}, {"sec-fetch-site": "none"}),
]


@pytest.mark.parametrize("form", ["password", "start"])
@pytest.mark.parametrize(("fields", "headers"), REFUSED)
def test_a_form_without_our_csrf_token_or_origin_is_refused(
    w: World, client: TestClient, form: str, fields: dict[str, str], headers: dict[str, str]
) -> None:
    url, csrf = FORMS[form](w, client)
    data = {"password": "pw"} | {k: (csrf if v == "CSRF" else v) for k, v in fields.items()}
    response = client.post(f"{url}/{form}", data=data, headers=headers)
    assert response.status_code == 403
    assert state_of(response.text) == "form_expired"
    assert w.bus.commands == []


@pytest.mark.parametrize("form", ["password", "start"])
def test_the_same_form_from_our_page_passes(w: World, client: TestClient, form: str) -> None:
    """The control for the refusals above: the same request with our token and origin."""
    url, csrf = FORMS[form](w, client)
    response = client.post(
        f"{url}/{form}", data={"csrf": csrf, "password": "pw"}, headers=SAME_ORIGIN
    )
    assert response.status_code == 303
    assert [v for _, v, _ in w.bus.commands] == [form]


@pytest.mark.parametrize("form", ["password", "start"])
@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data; boundary=x", "application/json", "text/plain", ""],
)
def test_a_form_of_another_content_type_is_refused(
    w: World, client: TestClient, form: str, content_type: str
) -> None:
    url, csrf = FORMS[form](w, client)
    body = f"csrf={csrf}&password=pw".encode()
    headers = SAME_ORIGIN | {"content-type": content_type}
    response = client.post(f"{url}/{form}", content=body, headers=headers)
    assert response.status_code == 400
    assert state_of(response.text) == "bad_request"
    assert w.bus.commands == []


@pytest.mark.parametrize("form", ["password", "start"])
def test_a_form_over_the_size_limit_is_refused(w: World, client: TestClient, form: str) -> None:
    """At most ``MAX_FORM`` bytes: a bigger body is refused before it is parsed, and one just
    under the limit passes."""
    url, csrf = FORMS[form](w, client)
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    head = f"csrf={csrf}&password=pw&pad=".encode()
    fits = head + b"x" * (MAX_FORM - len(head))
    too_big = fits + b"x"
    response = client.post(f"{url}/{form}", content=too_big, headers=SAME_ORIGIN | form_type)
    assert response.status_code == 400
    assert state_of(response.text) == "bad_request"
    assert w.bus.commands == []
    response = client.post(f"{url}/{form}", content=fits, headers=SAME_ORIGIN | form_type)
    assert response.status_code == 303
    assert len(w.bus.commands) == 1


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
