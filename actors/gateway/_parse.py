"""Command subjects and bodies: ``tgqr.cmd.<tenant>.<verb>`` parsed into a login command.

Bodies are JSON decoded by one msgspec decoder per verb, created once; anything a client can
send (junk, unknown fields, huge bodies) becomes a structured error reply, never an exception,
whose message names the field and its limits in plain words (:func:`events.plain_decode_error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

from actors.login import Cancel, Logout, Password, Start
from actors.telegram.proxy import Proxy, ProxyUrlError
from events import (
    DeviceInfo,
    InvalidTenantError,
    is_service_chain,
    plain_decode_error,
    validate_tenant,
)

__all__ = [
    "MAX_BODY",
    "BadRequestError",
    "LinkRequest",
    "decode_request",
    "error_reply",
    "parse_command",
]

MAX_BODY: Final = 64 * 1024
_encoder: Final = msgspec.json.Encoder()


# What Telegram shows in Settings → Devices: printable ASCII words, bounded.
_DEVICE_WORDS = r"^[A-Za-z0-9 _.,()+/-]+$"


class _DeviceBody(msgspec.Struct, forbid_unknown_fields=True):
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_DEVICE_WORDS)] = ""
    system: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_DEVICE_WORDS)] = ""
    app_version: Annotated[
        str, msgspec.Meta(min_length=1, max_length=32, pattern=_DEVICE_WORDS)
    ] = ""
    lang: Annotated[str, msgspec.Meta(min_length=2, max_length=10, pattern=r"^[a-z-]+$")] = ""


class _StartBody(msgspec.Struct, forbid_unknown_fields=True):
    expected_user_id: Annotated[int, msgspec.Meta(gt=0)] | None = None
    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=600)] | None = None
    force: bool = False
    device: _DeviceBody | None = None
    # socks5://[user:pass@]host:port or http://...: checked by Proxy.parse (a secret)
    proxy: Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None = None

    def __repr__(self) -> str:  # never the proxy's credentials
        return f"_StartBody(ttl_s={self.ttl_s}, force={self.force}, proxy=<hidden>)"


class _PasswordBody(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]

    def __repr__(self) -> str:  # never the password
        return "_PasswordBody(password=<hidden>)"


class _EmptyBody(msgspec.Struct, forbid_unknown_fields=True):
    pass


class LinkRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``link``: answered by the endpoint itself (a signed page link); writes no event."""

    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=600)] = 600
    lang: Literal["", "en", "ru"] = ""
    """The page's language when neither Telegram nor the browser names one (signed in)."""


_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "start": msgspec.json.Decoder(_StartBody),
    "password": msgspec.json.Decoder(_PasswordBody),
    "cancel": msgspec.json.Decoder(_EmptyBody),
    "logout": msgspec.json.Decoder(_EmptyBody),
    "link": msgspec.json.Decoder(LinkRequest),
}


def error_reply(code: str, message: str, **extra: object) -> bytes:
    """A structured error reply, as the NATS contract specifies (docs/contract.md)."""
    return _encoder.encode({"ok": False, "error": {"code": code, "message": message, **extra}})


class BadRequestError(Exception):
    def __init__(self, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.reply = error_reply(code, message, **extra)


def decode_request(
    subject: str, data: bytes, decoders: Mapping[str, msgspec.json.Decoder[Any]]
) -> tuple[str, str, Any]:
    """``(tenant, verb, body)`` of a request on ``<prefix>.<prefix>.<tenant>.<verb>``.

    Raises:
        BadRequestError: with the reply to send (``invalid_tenant``, ``invalid_request``).
    """
    parts = subject.split(".")
    if len(parts) != 4:
        prefix = ".".join(parts[:2])
        raise BadRequestError("invalid_request", f"subject must be {prefix}.<tenant>.<verb>")
    _, _, tenant, verb = parts
    try:
        validate_tenant(tenant)
    except InvalidTenantError as exc:
        raise BadRequestError("invalid_tenant", str(exc)) from exc
    if is_service_chain(tenant):  # ``_telegram`` and the like are the service's own chains
        raise BadRequestError(
            "invalid_tenant", f"tenant ids starting with _ are reserved ({tenant!r})"
        )
    decoder = decoders.get(verb)
    if decoder is None:
        verbs = ", ".join(decoders)
        raise BadRequestError("invalid_request", f"unknown verb {verb[:40]!r}: one of {verbs}")
    if len(data) > MAX_BODY:
        raise BadRequestError("invalid_request", f"body larger than {MAX_BODY} bytes")
    try:
        body = decoder.decode(data.strip() or b"{}")
    except msgspec.DecodeError as exc:
        raise BadRequestError("invalid_request", plain_decode_error(exc, decoder.type)) from exc
    return tenant, verb, body


def parse_command(
    subject: str, data: bytes
) -> tuple[str, str, Start | Password | Cancel | Logout | LinkRequest]:
    """``(tenant, verb, command)`` of a ``tgqr.cmd`` request.

    Raises:
        BadRequestError: with the reply to send.
    """
    tenant, verb, body = decode_request(subject, data, _DECODERS)
    if isinstance(body, LinkRequest):
        return tenant, verb, body
    if isinstance(body, _StartBody):
        device = body.device
        proxy = None
        if body.proxy is not None:
            try:
                proxy = Proxy.parse(body.proxy)
            except ProxyUrlError as exc:
                raise BadRequestError("invalid_request", f"proxy: {exc}") from None
        command: Start | Password | Cancel | Logout = Start(
            expected_user_id=body.expected_user_id,
            ttl_s=body.ttl_s,
            force=body.force,
            device=None
            if device is None
            else DeviceInfo(
                model=device.model,
                system=device.system,
                app_version=device.app_version,
                lang=device.lang,
            ),
            proxy_url=None if proxy is None else proxy.url,
            proxy_label="" if proxy is None else f"{proxy.label} #{proxy.fingerprint}",
        )
    elif isinstance(body, _PasswordBody):
        command = Password(password=body.password)
    else:
        command = Cancel() if verb == "cancel" else Logout()
    return tenant, verb, command
