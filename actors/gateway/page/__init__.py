"""The end user's page: signed login links, the Starlette app, its server and live updates.

``open_page_server`` binds the HTTP address and returns a :class:`PageServer`; its ``run`` is
one more part of the service's task group and its ``links`` answers the ``link`` command.
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
    open_page_server,
    parse_http,
)
from ._view import (
    PageView,
)

__all__ = [
    "CSP",
    "DEFAULT_HTTP",
    "DEFAULT_LINK_TTL_S",
    "FRAME_ANCESTORS",
    "LINK_KEY_ENV",
    "LINK_KEY_FILE",
    "PAGE_LIMITS",
    "STATIC_DIR",
    "BadLinkError",
    "ExpiredLinkError",
    "HttpAddressError",
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
    "TenantReader",
    "build_app",
    "load_link_key",
    "open_page_server",
    "parse_http",
    "qr_svg",
]
