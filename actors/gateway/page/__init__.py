"""The end user's page: signed login links, the Starlette app, its server and live updates.

The page runs in a process of its own (``tgqr page``, role ``page`` on NATS): ``bind_http``
makes its listening socket, ``open_page_server`` wires the app on it and returns a
:class:`PageServer` whose ``run`` serves it within :class:`ServeLimits`. The service issues the
links (:class:`LinkSigner`) with the same link key.
"""

from __future__ import annotations

from ._app import (
    STATIC_DIR,
    build_app,
)
from ._bus import (
    Limiter,
    NatsBus,
    PageBus,
    TenantReader,
)
from ._deps import (
    PAGE_LIMITS,
    PageDeps,
)
from ._guard import (
    ConnectionGuard,
    guarded_protocol,
)
from ._initdata import (
    BOT_ID_ENV,
    BOT_TOKEN_ENV,
    BOT_TOKEN_FILE_ENV,
    INITDATA_MAX_AGE_ENV,
    BotToken,
    InitDataError,
    TelegramAuth,
    TelegramAuthError,
    TelegramUser,
    load_telegram_auth,
    validate_init_data,
)
from ._limits import (
    ServeLimits,
    StreamSlots,
    raise_open_files_limit,
)
from ._links import (
    DEFAULT_LINK_TTL_S,
    LINK_KEY_ENV,
    LINK_KEY_FILE,
    BadLinkError,
    ExpiredLinkError,
    Link,
    LinkClaims,
    LinkKey,
    LinkKeyError,
    LinkSigner,
    load_link_key,
)
from ._render import (
    qr_svg,
)
from ._security import (
    CSP,
    FRAME_ANCESTORS,
)
from ._server import (
    DEFAULT_HTTP,
    HttpAddressError,
    PageServer,
    bind_http,
    open_page_server,
    parse_http,
    serve_uvicorn,
    url_of,
)
from ._texts import (
    LANGUAGES,
    pick_language,
)
from ._view import (
    PageView,
)

__all__ = [
    "BOT_ID_ENV",
    "BOT_TOKEN_ENV",
    "BOT_TOKEN_FILE_ENV",
    "CSP",
    "DEFAULT_HTTP",
    "DEFAULT_LINK_TTL_S",
    "FRAME_ANCESTORS",
    "INITDATA_MAX_AGE_ENV",
    "LANGUAGES",
    "LINK_KEY_ENV",
    "LINK_KEY_FILE",
    "PAGE_LIMITS",
    "STATIC_DIR",
    "BadLinkError",
    "BotToken",
    "ConnectionGuard",
    "ExpiredLinkError",
    "HttpAddressError",
    "InitDataError",
    "Limiter",
    "Link",
    "LinkClaims",
    "LinkKey",
    "LinkKeyError",
    "LinkSigner",
    "NatsBus",
    "PageBus",
    "PageDeps",
    "PageServer",
    "PageView",
    "ServeLimits",
    "StreamSlots",
    "TelegramAuth",
    "TelegramAuthError",
    "TelegramUser",
    "TenantReader",
    "bind_http",
    "build_app",
    "guarded_protocol",
    "load_link_key",
    "load_telegram_auth",
    "open_page_server",
    "parse_http",
    "pick_language",
    "qr_svg",
    "raise_open_files_limit",
    "serve_uvicorn",
    "url_of",
    "validate_init_data",
]
