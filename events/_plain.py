"""Request bodies refused in plain words: msgspec's decode errors turned into a sentence that
names the field and its limits (``ttl_s must be an integer from 1 to 600``), never the value sent
and never the decoder's own text (``Expected `int` >= 1 - at `$.ttl_s```).

Used by every endpoint that answers ``invalid_request`` for a JSON body: commands and leases
(:mod:`actors.gateway`), queries (:mod:`projections.queries`) and the simulator's scan.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
from msgspec import inspect

__all__ = ["plain_decode_error"]

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


def _number(value: float) -> str:
    """An integer in full (``31622400``, where ``:g`` would say ``3.16224e+07``)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range(low: float | None, high: float | None, *, unit: str = "", lead: str = "from") -> str:
    if low is not None and high is not None:
        return f" {lead} {_number(low)} to {_number(high)}{unit}"
    if low is not None:
        return f" of at least {_number(low)}{unit}"
    if high is not None:
        return f" of at most {_number(high)}{unit}"
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
