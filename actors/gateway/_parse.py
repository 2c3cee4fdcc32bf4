"""Command subjects and bodies: ``tgqr.cmd.<tenant>.<verb>`` parsed into a login command.

Bodies are JSON decoded by one msgspec decoder per verb, created once; anything a client can
send (junk, unknown fields, huge bodies) becomes a structured error reply, never an exception,
whose message names the field and its limits in plain words (:func:`plain_decode_error`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

import msgspec
from msgspec import inspect

from actors.login import Cancel, Logout, Password, Start
from events import InvalidTenantError, validate_tenant

__all__ = [
    "MAX_BODY",
    "BadRequestError",
    "LinkRequest",
    "decode_request",
    "error_reply",
    "parse_command",
    "plain_decode_error",
]

MAX_BODY: Final = 64 * 1024
_encoder: Final = msgspec.json.Encoder()


class _StartBody(msgspec.Struct, forbid_unknown_fields=True):
    expected_user_id: Annotated[int, msgspec.Meta(gt=0)] | None = None
    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=600)] | None = None
    force: bool = False


class _PasswordBody(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]

    def __repr__(self) -> str:  # never the password
        return "_PasswordBody(password=<hidden>)"


class _EmptyBody(msgspec.Struct, forbid_unknown_fields=True):
    pass


class LinkRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``link``: answered by the endpoint itself (a signed page link); writes no event."""

    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=600)] = 600


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


# --- decode errors in plain words ---------------------------------------------------------

_AT = re.compile(r" - at `\$((?:\.[A-Za-z0-9_]+|\[\d+\])*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(.*)`$")
_MISSING = re.compile(r"^Object missing required field `(.*)`$")
_CHARSET = re.compile(r"^\^\[([^\]]+)\][+*]\$$")


def plain_decode_error(exc: msgspec.DecodeError, body_type: Any) -> str:
    """What is wrong with a request body, in plain words that name the field and its limits
    (``ttl_s must be an integer from 1 to 600``), for a body decoded as ``body_type``.

    Never the value sent (it may be a password); an unknown field's name is cut to 40
    characters.
    """
    if not isinstance(exc, msgspec.ValidationError):
        return "the body is not valid JSON"
    text = str(exc)
    at = _AT.search(text)
    problem = text[: at.start()] if at else text
    path = [part for part in re.split(r"\.|\[\d+\]", at.group(1) if at else "") if part]
    here, field = _walk(inspect.type_info(body_type), path)
    if found := _UNKNOWN.match(problem):
        names = [f.encode_name for f in _fields(here)]
        holds = f"it may hold {', '.join(names)}" if names else "it takes no fields"
        where = f" in {'.'.join(path)}" if path else ""
        return f"unknown field {found.group(1)[:40]!r}{where}: {holds}"
    if found := _MISSING.match(problem):
        name = found.group(1)
        missing = next((f for f in _fields(here) if f.encode_name == name), None)
        what = f": {_describe(missing.type)}" if missing is not None else ""
        return f"{'.'.join([*path, name])} is required{what}"
    if field is None:
        return f"the body must be {_describe(here)}"
    return f"{'.'.join(path)} must be {_describe(field)}"


def _fields(info: inspect.Type | None) -> tuple[inspect.Field, ...]:
    if isinstance(info, inspect.UnionType):
        return next((f for t in info.types if (f := _fields(t))), ())
    if isinstance(info, inspect.StructType | inspect.DataclassType | inspect.TypedDictType):
        return info.fields
    return ()


def _walk(info: inspect.Type, path: list[str]) -> tuple[inspect.Type | None, inspect.Type | None]:
    """The type at ``path`` (for unknown or missing fields: the object holding them) and the
    type of its last field (None at the top)."""
    here: inspect.Type | None = info
    field: inspect.Type | None = None
    for name in path:
        found = next((f for f in _fields(here) if f.encode_name == name), None)
        if found is None:
            return here, field
        here = field = found.type
    return here, field


def _range(low: float | None, high: float | None, *, unit: str = "", lead: str = "from") -> str:
    if low is not None and high is not None:
        return f" {lead} {low:g} to {high:g}{unit}"
    if low is not None:
        return f" of at least {low:g}{unit}"
    if high is not None:
        return f" of at most {high:g}{unit}"
    return ""


def _charset(pattern: str) -> str:
    """``^[A-Za-z0-9_.-]+$`` as "letters, digits and _.- only"; other patterns as they are."""
    found = _CHARSET.match(pattern)
    if found is None:
        return f" matching {pattern}"
    rest, words = found.group(1), []
    for token, word in (("A-Za-z", "letters"), ("a-z", "small letters"), ("0-9", "digits")):
        if token in rest:
            words.append(word)
            rest = rest.replace(token, "")
    if rest:
        words.append(rest)
    listed = ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]
    return f": {listed} only"


def _describe(info: inspect.Type | None) -> str:
    """A type in words: "an integer from 1 to 600", "a string of 1 to 64 characters"."""
    match info:
        case inspect.IntType(ge=ge, gt=gt, le=le, lt=lt):
            low = ge if ge is not None else (gt + 1 if gt is not None else None)
            high = le if le is not None else (lt - 1 if lt is not None else None)
            return "an integer" + _range(low, high)
        case inspect.FloatType(ge=ge, gt=gt, le=le, lt=lt):
            return "a number" + _range(ge if ge is not None else gt, le if le is not None else lt)
        case inspect.StrType(min_length=low, max_length=high, pattern=pattern):
            if low == 0:
                low = None
            text = "a string" + _range(low, high, unit=" characters", lead="of")
            return text + (_charset(pattern) if pattern is not None else "")
        case inspect.BoolType():
            return "true or false"
        case inspect.LiteralType(values=values):
            return "one of " + ", ".join(json.dumps(v) for v in values)
        case inspect.UnionType(types=types):
            kinds = [_describe(t) for t in types if not isinstance(t, inspect.NoneType)]
            return " or ".join(kinds) or "null"
        case inspect.StructType() | inspect.DataclassType() | inspect.TypedDictType():
            return "a JSON object"
        case inspect.DictType():
            return "a JSON object"
        case inspect.ListType() | inspect.TupleType() | inspect.VarTupleType():
            return "a JSON list"
    return "of another type"


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
        command: Start | Password | Cancel | Logout = Start(
            expected_user_id=body.expected_user_id, ttl_s=body.ttl_s, force=body.force
        )
    elif isinstance(body, _PasswordBody):
        command = Password(password=body.password)
    else:
        command = Cancel() if verb == "cancel" else Logout()
    return tenant, verb, command
