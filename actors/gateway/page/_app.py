"""The end user's page as a Starlette app: routes, a lifespan, small handlers.

Routes (``<token>`` is the signed link token, checked on every request before anything else):

- ``GET /l/<token>``: the page; it never sends a command (link previewers and mail scanners
  open links too), it offers a button instead when no login runs
- ``GET /l/<token>/events``: its live updates (server-sent events), capped per tenant and overall
- ``POST /l/<token>/start``: the button: the ``start`` command (idempotent: the running attempt,
  if any), carrying the ``expected_user_id`` of the tenant's last ``LoginStarted``
- ``POST /l/<token>/password``: the 2FA form, sent on as the ``password`` command
- ``POST /l/<token>/telegram``: a Mini App's launch data (``initData``), checked here with the
  bot token (or Telegram's key); valid, it redirects to the page with a pass (``?tg=``) naming
  the Telegram user, whom the logins this page starts then expect (unless the app's own
  ``expected_user_id`` differs: the app's wins); invalid or stale, an error page, nothing else
- ``GET /static/...``: the page's script, style sheet and icon; ``GET /``: a bare notice
- ``GET /metrics``: the process's figures for Prometheus (counts only: no tenant, no link)

A bad or expired link, a refused form and any failure get an error page (never a traceback)
and send no command. Forms need the page's CSRF token and a same-origin request, as
``application/x-www-form-urlencoded`` of at most ``MAX_FORM`` bytes. Passwords are never
logged, nor are link tokens or launch data (uvicorn's access log is off; these handlers log
the tenant). Every page and error page is in English or Russian (:func:`pick_language`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import parse_qs

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from actors.metrics import Exposition
from events import EventLogUnavailableError

from ._deps import PageDeps
from ._feed import EventStream, load_view
from ._initdata import InitDataError, validate_init_data
from ._links import BadLinkError, ExpiredLinkError, LinkClaims
from ._render import PageContext, render_error, render_home, render_page
from ._security import SecurityHeaders, same_origin
from ._texts import LANGUAGES, accepted_language, pick_language
from ._view import NOTICES, PageView

__all__ = ["STATIC_DIR", "build_app"]

log = logging.getLogger("tgqr.page")

STATIC_DIR: Final = Path(__file__).parent / "static"
MAX_FORM: Final = 8 * 1024
_PHONE: Final = re.compile(r"Android|iPhone|iPod|Mobile|Windows Phone")


class _RefusedError(Exception):
    """A request answered with an error page of ``kind`` (see ``ERRORS``); nothing was sent."""

    def __init__(self, kind: str, retry_after: float | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


def _lang_of(request: Request) -> str:
    return accepted_language(request.headers.get("accept-language", "")) or "en"


def _error_page(kind: str, lang: str, retry_after: float | None = None) -> HTMLResponse:
    status, page = render_error(kind, lang)
    headers = {"retry-after": str(max(1, round(retry_after)))} if retry_after else None
    return HTMLResponse(page, status_code=status, headers=headers)


def _deps(request: Request) -> PageDeps:
    return cast("PageDeps", request.state.deps)


def _claims(request: Request, deps: PageDeps, kind: str) -> LinkClaims:
    """The verified link of this request, within its rate limit for ``kind``."""
    try:
        claims = deps.signer.verify(str(request.path_params["token"]))
    except ExpiredLinkError:
        raise _RefusedError("link_expired") from None
    except BadLinkError:
        raise _RefusedError("invalid_link") from None
    retry_after = deps.limiter.check(claims.link_id, kind, deps.monotonic())
    if retry_after is not None:
        log.info("tenant=%s page: %s rate limited", claims.tenant, kind)
        raise _RefusedError("rate_limited", retry_after)
    return claims


async def _view(deps: PageDeps, tenant: str) -> PageView:
    try:
        return await load_view(deps, tenant)
    except EventLogUnavailableError:
        log.warning("tenant=%s page: the event log is unavailable", tenant)
        raise _RefusedError("unavailable") from None


def _notice_of(reply: Mapping[str, Any]) -> str:
    """The notice code of a command reply ("" when it succeeded)."""
    if reply.get("ok"):
        return ""
    error = reply.get("error")
    code = error.get("code", "") if isinstance(error, dict) else ""
    return code if code in NOTICES else "unavailable"


async def _form(request: Request, deps: PageDeps, claims: LinkClaims) -> dict[str, str]:
    """The posted form, if it came from this link's own page (same origin, CSRF token)."""
    if not same_origin(dict(request.headers), deps.public_origins):
        log.info("tenant=%s page: cross-site form refused", claims.tenant)
        raise _RefusedError("form_expired")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _RefusedError("bad_request")
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise _RefusedError("bad_request")
    except ClientDisconnect:
        raise _RefusedError("bad_request") from None
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=8, keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise _RefusedError("bad_request") from None
    form = {name: values[0] for name, values in fields.items()}
    if not deps.signer.check_csrf(claims, form.get("csrf", "")):
        log.info("tenant=%s page: form without a valid CSRF token refused", claims.tenant)
        raise _RefusedError("form_expired")
    return form


def _bound(deps: PageDeps, claims: LinkClaims, bind: str) -> tuple[int, str] | None:
    """The Mini App pass ``bind`` (None: none given); a pass not made for this link is refused."""
    if not bind:
        return None
    bound = deps.signer.check_bind(claims, bind)
    if bound is None:
        log.info("tenant=%s page: a Mini App pass that is not this link's refused", claims.tenant)
        raise _RefusedError("telegram_refused")
    return bound


def _back(request: Request, notice: str, bind: str = "") -> RedirectResponse:
    """303 to the page itself (a reload never re-sends the form), with a notice code and the
    Mini App pass, if any."""
    params = [f"n={notice}"] * bool(notice) + [f"tg={bind}"] * bool(bind)
    query = f"?{'&'.join(params)}" if params else ""
    return RedirectResponse(f"/l/{request.path_params['token']}{query}", status_code=303)


async def page(request: Request) -> Response:
    deps = _deps(request)
    claims = _claims(request, deps, "view")
    bind = request.query_params.get("tg", "")
    bound = _bound(deps, claims, bind)
    view = await _view(deps, claims.tenant)
    token = str(request.path_params["token"])
    ctx = PageContext(
        lang=pick_language(
            bound[1] if bound else None, request.headers.get("accept-language", ""), claims.lang
        ),
        bind=bind if bound else "",
        bound_user=bound[0] if bound else None,
        telegram=deps.telegram is not None and bound is None,
        phone=bool(_PHONE.search(request.headers.get("user-agent", ""))),
        url=f"{deps.signer.base_url}/l/{token}",
    )
    notice = request.query_params.get("n", "")
    html = render_page(
        view,
        token=token,
        csrf=deps.signer.csrf_token(claims),
        now=deps.clock(),
        notice=notice if notice in NOTICES else "",
        ctx=ctx,
    )
    return HTMLResponse(html)


async def telegram(request: Request) -> Response:
    """A Mini App's launch data: checked here, never trusted from the browser alone."""
    deps = _deps(request)
    claims = _claims(request, deps, "telegram")
    form = await _form(request, deps, claims)
    if deps.telegram is None:
        raise _RefusedError("bad_request")
    try:
        user = validate_init_data(form.get("init_data", ""), deps.telegram, deps.clock())
    except InitDataError as exc:
        log.info("tenant=%s page: Mini App launch data refused (%s)", claims.tenant, exc.reason)
        raise _RefusedError("telegram_refused") from None
    accept = request.headers.get("accept-language", "")
    lang = pick_language(user.language_code, accept, claims.lang)
    log.info("tenant=%s page: opened as a Mini App by Telegram user %d", claims.tenant, user.id)
    return _back(request, "", deps.signer.bind(claims, user.id, lang))


async def events(request: Request) -> Response:
    deps = _deps(request)
    claims = _claims(request, deps, "events")
    lang = request.query_params.get("lang", "")
    if not deps.streams.take(claims.tenant):
        log.info("tenant=%s page: live updates refused (too many streams)", claims.tenant)
        raise _RefusedError("busy", retry_after=10)
    try:
        view = await _view(deps, claims.tenant)
    except BaseException:
        deps.streams.give_back(claims.tenant)
        raise
    # The stream gives the slot back when it ends.
    return EventStream(
        deps,
        claims,
        view,
        cast("anyio.Event", request.state.closing),
        lang=lang if lang in LANGUAGES else "en",
    )


async def password(request: Request) -> Response:
    deps = _deps(request)
    claims = _claims(request, deps, "password")
    form = await _form(request, deps, claims)
    bind = form.get("tg", "")
    _bound(deps, claims, bind)
    secret = form.pop("password", "")
    if not secret:
        return _back(request, "empty_password", bind)
    reply = await deps.bus.command(claims.tenant, "password", {"password": secret})
    del secret
    log.info("tenant=%s page: password sent (%s)", claims.tenant, reply.get("state", "refused"))
    return _back(request, _notice_of(reply), bind)


async def start(request: Request) -> Response:
    """The user pressed the button: start a login that keeps the tenant's ownership check, or,
    in a Mini App, expects the Telegram user who opened it (the app's own choice wins)."""
    deps = _deps(request)
    claims = _claims(request, deps, "start")
    bind = (await _form(request, deps, claims)).get("tg", "")
    bound = _bound(deps, claims, bind)
    view = await _view(deps, claims.tenant)
    if view.quarantined:
        return _back(request, "tenant_quarantined", bind)
    body: dict[str, object] = {}
    if view.expected_user_id is not None:
        body["expected_user_id"] = view.expected_user_id
    elif bound is not None:
        body["expected_user_id"] = bound[0]
    reply = await deps.bus.command(claims.tenant, "start", body)
    log.info("tenant=%s page: login started (%s)", claims.tenant, reply.get("state"))
    return _back(request, _notice_of(reply), bind)


async def home(request: Request) -> Response:
    return HTMLResponse(render_home(_lang_of(request)))


async def _on_refused(request: Request, exc: Exception) -> Response:
    refused = cast("_RefusedError", exc)
    return _error_page(refused.kind, _lang_of(request), refused.retry_after)


async def _on_http(request: Request, exc: Exception) -> Response:
    status = cast("HTTPException", exc).status_code
    kinds = {404: "not_found", 405: "method_not_allowed"}
    return _error_page(kinds.get(status, "bad_request"), _lang_of(request))


async def _on_error(request: Request, exc: Exception) -> Response:
    log.error("page: %s", type(exc).__name__)
    return _error_page("error", _lang_of(request))


def build_app(
    deps: PageDeps, *, closing: anyio.Event | None = None, metrics: Exposition | None = None
) -> ASGIApp:
    """The page app, with its security headers on every response (errors included).

    ``closing``: set it to end every live stream (the server is stopping); the lifespan makes
    one when none is given. ``metrics``: served on ``GET /metrics`` when given.
    """

    async def scrape(request: Request) -> Response:
        if metrics is None:  # not routed then; kept for the type checker
            raise HTTPException(404)
        body, content_type = metrics.render(request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, object]]:
        yield {"deps": deps, "closing": closing or anyio.Event()}

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/l/{token}", page),
            Route("/l/{token}/events", events),
            Route("/l/{token}/password", password, methods=["POST"]),
            Route("/l/{token}/start", start, methods=["POST"]),
            Route("/l/{token}/telegram", telegram, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
            *([Route("/metrics", scrape)] if metrics is not None else []),
        ],
        lifespan=lifespan,
        exception_handlers={
            _RefusedError: _on_refused,
            HTTPException: _on_http,
            Exception: _on_error,
        },
    )
    return SecurityHeaders(app, https=deps.https)
