"""The page's HTML, its error pages, the QR code as SVG and the JSON the live updates carry.

Pure string building: every value from outside goes through ``html.escape``; no inline script
or style (the CSP forbids both), so the markup carries only classes, ``hidden`` and ``data-*``.
Every state's section is in the page, only the current one visible: the script switches them
from the live updates, and without JavaScript the page reloads itself while the login runs.
"""

from __future__ import annotations

import io
from datetime import datetime
from functools import lru_cache
from html import escape
from typing import Final

import segno

from ._view import PageView, failure_text

__all__ = ["ERRORS", "qr_svg", "render_error", "render_home", "render_page", "view_json"]

TITLE: Final = "Log in with Telegram"

ERRORS: Final[dict[str, tuple[int, str, str]]] = {
    "invalid_link": (
        403,
        "This link is not valid",
        "The link is incomplete or was changed. Ask for a new link.",
    ),
    "link_expired": (
        410,
        "This link has expired",
        "Links work for a few minutes. Ask for a new one.",
    ),
    "rate_limited": (429, "Too many requests", "Wait a minute, then reload this page."),
    "form_expired": (403, "The form has expired", "Go back, reload the page and try again."),
    "bad_request": (400, "That did not work", "The request was not understood. Reload the page."),
    "not_found": (404, "Nothing here", "Open the login link you were given."),
    "method_not_allowed": (405, "Nothing here", "Open the login link you were given."),
    "unavailable": (503, "Temporarily unavailable", "The service is busy. Try again in a moment."),
    "busy": (503, "Too many open pages", "Close other tabs of this page, then reload it."),
    "error": (500, "Something went wrong", "Please try again in a moment."),
}
"""Error page kind -> (HTTP status, title, message). The kind is the page's ``data-state``."""


@lru_cache(maxsize=512)
def qr_svg(url: str) -> str:
    """``url`` as a QR code: SVG, black on white, 4-module quiet zone, sized by the CSS."""
    out = io.BytesIO()
    segno.make(url, error="m").save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        nl=False,
        scale=1,
        border=4,
        dark="#000",
        light="#fff",
        omitsize=True,
        svgclass="qr",
        lineclass=None,
    )
    return out.getvalue().decode("ascii")


def _iso(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else ""


def view_json(view: PageView, now: datetime) -> dict[str, object]:
    """What one live update carries: everything the script needs to show ``view``."""
    login = view.login
    return {
        "state": view.state,
        "attempt": login.attempt,
        "now": _iso(now),
        "deadline": _iso(login.deadline) if view.live else "",
        "qr": qr_svg(login.qr_url) if view.live and login.qr_url else "",
        "hint": view.hint,
        "tries_left": login.tries_left,
        "user_id": login.user_id,
        "reason": failure_text(view.reason),
        "retry_at": _iso(login.retry_at) if view.live else "",
    }


def _left(deadline: datetime | None, now: datetime) -> str:
    seconds = max(0, int((deadline - now).total_seconds())) if deadline else 0
    return f"{seconds // 60}:{seconds % 60:02d}"


def _refresh_s(view: PageView, now: datetime) -> int:
    """How often the page reloads itself without JavaScript: before the code changes."""
    expires = view.login.qr_expires_at
    if view.login.status == "pending" and expires is not None:
        return max(2, min(10, int((expires - now).total_seconds()) - 1))
    return 3


def _head(extra: str = "") -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{TITLE}</title>\n"
        '<link rel="stylesheet" href="/static/page.css">\n'
        '<link rel="icon" href="/static/icon.svg" type="image/svg+xml">\n'
        f"{extra}</head>\n"
    )


def _hidden(show: bool) -> str:
    return "" if show else " hidden"


def _start_form(action: str, csrf: str, label: str) -> str:
    return (
        f'<form method="post" action="{action}" class="start">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<button type="submit">{label}</button></form>'
    )


def _device_line(view: PageView) -> str:
    """How the login will appear in the user's Settings → Devices (when the log names it)."""
    device = view.login.device
    if device is None or not device.model:
        return ""
    name = f"{device.model}, {device.system}" if device.system else device.model
    return (
        f'<p class="small" data-field="device">This login will appear as '
        f"«{escape(name)}» in <b>Settings → Devices</b>.</p>"
    )


def render_page(view: PageView, *, token: str, csrf: str, now: datetime, notice: str) -> str:
    """The page for ``view``; ``token`` is the link's (forms and live updates use it)."""
    login, state = view.login, view.state
    base = f"/l/{escape(token)}"
    start = f"{base}/start"
    qr = qr_svg(login.qr_url) if view.live and login.qr_url else ""
    qr_box = qr or '<p class="wait">Preparing your code…</p>'
    tries = login.tries_left
    refresh = (
        f'<noscript><meta http-equiv="refresh" content="{_refresh_s(view, now)}"></noscript>\n'
        if view.live
        else ""
    )
    head = _head(f'<script src="/static/page.js" defer></script>\n{refresh}')
    sections = {
        "idle": '<p class="big">Log in with your phone</p>'
        "<p>Get a code, then scan it with Telegram on your phone.</p>"
        + _start_form(start, csrf, "Get a code"),
        "pending": (
            f'<div id="qr" class="qr-box" role="img" aria-label="QR code to scan with Telegram">'
            f"{qr_box}</div>"
            '<ol class="steps"><li>Open Telegram on your phone.</li>'
            "<li>Go to <b>Settings → Devices → Link Desktop Device</b>.</li>"
            "<li>Point your phone at this code.</li></ol>"
            f"{_device_line(view)}"
            f'<p class="small" data-field="flood"{_hidden(login.retry_at is not None)}>'
            "Telegram asked us to slow down: a new code is on its way.</p>"
        ),
        "scanned": '<p class="big">Scanned: confirm on your phone</p>'
        "<p>Telegram on your phone asks you to confirm this login.</p>",
        "password_required": (
            f'<form method="post" action="{base}/password" class="password">'
            '<p class="big">Two-step verification</p>'
            "<p>Your account has a cloud password. Enter it to finish logging in.</p>"
            f'<p data-field="hint"{_hidden(bool(view.hint))}>Hint: '
            f"<span>{escape(view.hint)}</span></p>"
            f'<p class="warn" data-field="tries"{_hidden(tries is not None)}>Wrong password. '
            f"<span>{tries if tries is not None else ''}</span> tries left.</p>"
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            '<label for="password">Password</label>'
            '<input id="password" name="password" type="password" required maxlength="1024"'
            ' autocomplete="current-password" autocapitalize="off" spellcheck="false">'
            '<button type="submit">Log in</button></form>'
        ),
        "authorized": '<p class="big ok">You are logged in</p>'
        f'<p>Logged in as Telegram user <b data-field="user">{login.user_id or ""}</b>. '
        "You can close this page.</p>",
        "expired": '<p class="big">The code expired</p>'
        "<p>The login took too long. Get a new code to try again.</p>"
        + _start_form(start, csrf, "Get a new code"),
        "failed": '<p class="big bad">Login failed</p>'
        f'<p data-field="reason">{escape(failure_text(view.reason))}</p>'
        + _start_form(start, csrf, "Try again"),
        "cancelled": '<p class="big">This login was cancelled</p>'
        + _start_form(start, csrf, "Start again"),
        "logged_out": '<p class="big">Logged out</p>'
        f'<p data-field="reason">{escape(failure_text(view.reason))}</p>'
        + _start_form(start, csrf, "Log in again"),
        "quarantined": '<p class="big bad">On hold</p>'
        "<p>This login is on hold for a security check. "
        "Please contact whoever sent you this link.</p>",
    }
    body = "".join(
        f'<section data-for="{name}"{_hidden(name == state)}>{html}</section>\n'
        for name, html in sections.items()
    )
    deadline = _iso(login.deadline) if view.live else ""
    return (
        f'{head}<body data-state="{escape(state)}" data-events="{base}/events" '
        f'data-deadline="{deadline}" data-now="{_iso(now)}">\n<main>\n'
        f"<h1>{TITLE}</h1>\n"
        f'<p class="notice" id="notice" role="status"{_hidden(bool(notice))}>'
        f"{escape(notice)}</p>\n{body}"
        f'<p class="countdown" id="countdown"{_hidden(view.live)}>This login ends in '
        f'<time id="left" datetime="{deadline}">{_left(login.deadline, now)}</time></p>\n'
        '<noscript><p class="small">This page updates itself every few seconds. '
        f'<a href="{base}">Reload</a></p></noscript>\n'
        "</main>\n</body>\n</html>\n"
    )


def render_error(kind: str) -> tuple[int, str]:
    """(HTTP status, page) for an error of ``kind`` (see :data:`ERRORS`); no details."""
    status, title, message = ERRORS.get(kind, ERRORS["error"])
    page = (
        f'{_head()}<body data-state="{escape(kind if kind in ERRORS else "error")}">\n'
        f"<main>\n<h1>{escape(title)}</h1>\n<p>{escape(message)}</p>\n"
        "</main>\n</body>\n</html>\n"
    )
    return status, page


def render_home() -> str:
    """What the bare address shows: no tenants, no links, nothing to enumerate."""
    return (
        f'{_head()}<body data-state="home">\n<main>\n<h1>{TITLE}</h1>\n'
        '<p class="big">Open the login link you were given.</p>\n</main>\n</body>\n</html>\n'
    )
