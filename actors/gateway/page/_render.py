"""The page's HTML, its error pages, the QR code as SVG and the JSON the live updates carry.

Pure string building: every value from outside goes through ``html.escape``; no inline script
or style (the CSP forbids both), so the markup carries only classes, ``hidden`` and ``data-*``.
Every state's section is in the page, only the current one visible: the script switches them
from the live updates, and without JavaScript the page reloads itself while the login runs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from html import escape
from typing import Final

import segno

from ._texts import TEXTS
from ._view import PageView, failure_text

__all__ = [
    "ERRORS",
    "PageContext",
    "qr_svg",
    "render_error",
    "render_home",
    "render_page",
    "view_json",
]

ERRORS: Final[dict[str, int]] = {
    "invalid_link": 403,
    "link_expired": 410,
    "rate_limited": 429,
    "form_expired": 403,
    "bad_request": 400,
    "not_found": 404,
    "method_not_allowed": 405,
    "unavailable": 503,
    "busy": 503,
    "error": 500,
    "telegram_refused": 403,
}
"""Error page kind -> HTTP status (texts: ``TEXTS[lang]["e:<kind>"]`` and ``"m:<kind>"``). The
kind is the page's ``data-state``."""


@dataclass(frozen=True, slots=True)
class PageContext:
    """Who looks at the page, and how: its language, the Mini App pass (``bind``: the token
    the forms carry, ``bound_user``: whom Telegram vouched for), whether launch data is asked
    for (``telegram``: the Mini App check is configured and no pass is held yet), whether
    this is a phone, and the link itself (``url``, offered for copying on a phone)."""

    lang: str = "en"
    bind: str = ""
    bound_user: int | None = None
    telegram: bool = False
    phone: bool = False
    url: str = ""


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


def view_json(view: PageView, now: datetime, lang: str = "en") -> dict[str, object]:
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
        "reason": failure_text(view.reason, lang),
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


_SCRIPT: Final = '<script src="/static/page.js" defer></script>\n'
"""On every page: inside Telegram it tells the client the page is ready (error pages too)."""


def _head(lang: str, extra: str = "") -> str:
    return (
        f'<!doctype html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{TEXTS[lang]['title']}</title>\n"
        '<link rel="stylesheet" href="/static/page.css">\n'
        '<link rel="icon" href="/static/icon.svg" type="image/svg+xml">\n'
        f"{extra}</head>\n"
    )


def _hidden(show: bool) -> str:
    return "" if show else " hidden"


def _start_form(action: str, csrf: str, bind: str, label: str) -> str:
    return (
        f'<form method="post" action="{action}" class="start">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f"{_bind_field(bind)}"
        f'<button type="submit">{label}</button></form>'
    )


def _bind_field(bind: str) -> str:
    return f'<input type="hidden" name="tg" value="{escape(bind)}">' if bind else ""


def _device_line(view: PageView, t: dict[str, str]) -> str:
    """How the login will appear in the user's Settings → Devices (when the log names it)."""
    device = view.login.device
    if device is None or not device.model:
        return ""
    name = f"{device.model}, {device.system}" if device.system else device.model
    line = t["device"].replace("{name}", escape(name))
    return f'<p class="small" data-field="device">{line}</p>'


def _whose(view: PageView, ctx: PageContext, t: dict[str, str]) -> str:
    """The Mini App's binding: whose login this is, and whether the app's own choice wins."""
    if ctx.bound_user is None:
        return ""
    expected = view.expected_user_id
    if expected is not None and expected != ctx.bound_user:
        return f'<p class="small warn" data-field="app-wins">{t["app_wins"]}</p>\n'
    name = f"<b>{ctx.bound_user}</b>"
    return f'<p class="small" data-field="bound">{t["bound"].replace("{name}", name)}</p>\n'


def _phone(ctx: PageContext, t: dict[str, str]) -> str:
    """On the phone that would have to scan: say so, and offer the link for another screen."""
    if not ctx.phone:
        return ""
    return (
        f'<div class="phone" data-field="phone"><p><b>{t["phone_big"]}</b></p>'
        f'<p class="small">{t["phone_text"]}</p>'
        f'<input class="link" readonly aria-label="link" value="{escape(ctx.url)}">'
        f'<button type="button" class="copy" data-copied="{t["copied"]}" hidden>'
        f"{t['copy']}</button></div>"
    )


def _sections(view: PageView, base: str, csrf: str, ctx: PageContext) -> dict[str, str]:
    t, login = TEXTS[ctx.lang], view.login
    start, bind = f"{base}/start", ctx.bind
    qr = qr_svg(login.qr_url) if view.live and login.qr_url else ""
    qr_box = qr or f'<p class="wait">{t["preparing"]}</p>'
    tries = login.tries_left
    tries_text = t["tries"].replace("{n}", f"<span>{tries if tries is not None else ''}</span>")
    user = f'<b data-field="user">{login.user_id or ""}</b>'
    return {
        "idle": f'<p class="big">{t["idle_big"]}</p><p>{t["idle_text"]}</p>'
        + _phone(ctx, t)
        + _start_form(start, csrf, bind, t["get_code"]),
        "pending": (
            f"{_phone(ctx, t)}"
            f'<div id="qr" class="qr-box" role="img" aria-label="{t["qr_label"]}">'
            f"{qr_box}</div>"
            f'<ol class="steps"><li>{t["step1"]}</li><li>{t["step2"]}</li>'
            f"<li>{t['step3']}</li></ol>"
            f"{_device_line(view, t)}"
            f'<p class="small" data-field="flood"{_hidden(login.retry_at is not None)}>'
            f"{t['flood']}</p>"
        ),
        "scanned": f'<p class="big">{t["scanned_big"]}</p><p>{t["scanned_text"]}</p>',
        "password_required": (
            f'<form method="post" action="{base}/password" class="password">'
            f'<p class="big">{t["password_big"]}</p><p>{t["password_text"]}</p>'
            f'<p data-field="hint"{_hidden(bool(view.hint))}>{t["hint"]} '
            f"<span>{escape(view.hint)}</span></p>"
            f'<p class="warn" data-field="tries"{_hidden(tries is not None)}>{tries_text}</p>'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">{_bind_field(bind)}'
            f'<label for="password">{t["password_label"]}</label>'
            '<input id="password" name="password" type="password" required maxlength="1024"'
            ' autocomplete="current-password" autocapitalize="off" spellcheck="false">'
            f'<button type="submit">{t["log_in"]}</button></form>'
        ),
        "authorized": f'<p class="big ok">{t["authorized_big"]}</p>'
        f"<p>{t['authorized_text'].replace('{user}', user)}</p>",
        "expired": f'<p class="big">{t["expired_big"]}</p><p>{t["expired_text"]}</p>'
        + _start_form(start, csrf, bind, t["new_code"]),
        "failed": f'<p class="big bad">{t["failed_big"]}</p>'
        f'<p data-field="reason">{escape(failure_text(view.reason, ctx.lang))}</p>'
        + _start_form(start, csrf, bind, t["try_again"]),
        "cancelled": f'<p class="big">{t["cancelled_big"]}</p>'
        + _start_form(start, csrf, bind, t["start_again"]),
        "logged_out": f'<p class="big">{t["logged_out_big"]}</p>'
        f'<p data-field="reason">{escape(failure_text(view.reason, ctx.lang))}</p>'
        + _start_form(start, csrf, bind, t["log_in_again"]),
        "quarantined": f'<p class="big bad">{t["quarantined_big"]}</p>'
        f"<p>{t['quarantined_text']}</p>",
    }


def render_page(
    view: PageView,
    *,
    token: str,
    csrf: str,
    now: datetime,
    notice: str,
    ctx: PageContext = PageContext(),
) -> str:
    """The page for ``view``; ``token`` is the link's (forms and live updates use it);
    ``notice``: a code of :data:`NOTICES` or ""."""
    t, state = TEXTS[ctx.lang], view.state
    base = f"/l/{escape(token)}"
    refresh = (
        f'<noscript><meta http-equiv="refresh" content="{_refresh_s(view, now)}"></noscript>\n'
        if view.live
        else ""
    )
    head = _head(ctx.lang, f"{_SCRIPT}{refresh}")
    body = "".join(
        f'<section data-for="{name}"{_hidden(name == state)}>{html}</section>\n'
        for name, html in _sections(view, base, csrf, ctx).items()
    )
    deadline = _iso(view.login.deadline) if view.live else ""
    events = f"{base}/events?lang={ctx.lang}"
    asks = f' data-telegram="{base}/telegram" data-csrf="{escape(csrf)}"' if ctx.telegram else ""
    notice_text = t.get(f"n:{notice}", "") if notice else ""
    left = t["countdown"].replace(
        "{left}", f'<time id="left" datetime="{deadline}">{_left(view.login.deadline, now)}</time>'
    )
    reload = f"{base}?tg={escape(ctx.bind)}" if ctx.bind else base
    return (
        f'{head}<body data-state="{escape(state)}" data-events="{events}" '
        f'data-deadline="{deadline}" data-now="{_iso(now)}" data-lang="{ctx.lang}" '
        f'data-preparing="{t["preparing"]}"{asks}>\n<main>\n'
        f"<h1>{t['title']}</h1>\n{_whose(view, ctx, t)}"
        f'<p class="notice" id="notice" role="status"{_hidden(bool(notice_text))}>'
        f"{escape(notice_text)}</p>\n{body}"
        f'<p class="countdown" id="countdown"{_hidden(view.live)}>{left}</p>\n'
        f'<noscript><p class="small">{t["noscript"]} '
        f'<a href="{reload}">{t["reload"]}</a></p></noscript>\n'
        "</main>\n</body>\n</html>\n"
    )


def render_error(kind: str, lang: str = "en") -> tuple[int, str]:
    """(HTTP status, page) for an error of ``kind`` (see :data:`ERRORS`); no details."""
    kind = kind if kind in ERRORS else "error"
    shown = "not_found" if kind == "method_not_allowed" else kind
    t = TEXTS[lang]
    page = (
        f'{_head(lang, _SCRIPT)}<body data-state="{kind}" data-lang="{lang}">\n'
        f"<main>\n<h1>{t['e:' + shown]}</h1>\n<p>{t['m:' + shown]}</p>\n"
        "</main>\n</body>\n</html>\n"
    )
    return ERRORS[kind], page


def render_home(lang: str = "en") -> str:
    """What the bare address shows: no tenants, no links, nothing to enumerate."""
    t = TEXTS[lang]
    return (
        f'{_head(lang, _SCRIPT)}<body data-state="home" data-lang="{lang}">\n<main>\n'
        f'<h1>{t["title"]}</h1>\n<p class="big">{t["home"]}</p>\n</main>\n</body>\n</html>\n'
    )
