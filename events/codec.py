"""The one JSON codec for events, with upcasting keyed by schema version.

Encoders and decoders are created once at import. Decoding takes the typed fast path; only
data written by an older schema goes through :data:`UPCASTERS` (plain dicts in, plain dicts
out), and data from a newer schema is refused rather than misread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from .catalogue import EVENT_TYPES, SCHEMA_VERSION, Event
from .errors import UndecodableEventError

__all__ = ["UPCASTERS", "current_json", "decode_event", "encode_event"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (event type, version it upgrades from) -> function producing version + 1. Empty while the
# catalogue is at version 1; the mechanism is exercised by the tests with a local registry.
UPCASTERS: Final[dict[tuple[str, int], Upcaster]] = {}

_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Event)
_raw_decoder: Final = msgspec.json.Decoder(dict[str, Any])


def encode_event(event: Event) -> bytes:
    """Encode ``event`` as one JSON object with a ``type`` field."""
    return _encoder.encode(event)


def decode_event(
    data: bytes,
    *,
    seq: int = 0,
    subject: str = "",
    upcasters: dict[tuple[str, int], Upcaster] | None = None,
) -> Event:
    """Decode one stored event, upcasting older schema versions.

    Raises:
        UndecodableEventError: garbage, an unknown type, a newer schema version, or fields
            that do not fit; it names ``seq`` and ``subject``.
    """
    return _decode(data, seq, subject, upcasters)[0]


def current_json(data: bytes, *, seq: int = 0, subject: str = "") -> bytes:
    """``data`` as one line of current-schema JSON, for readers of the raw JSON (the
    projection store): ``data`` itself when it already is (the common case, no copy), else
    the decoded, upcast event re-encoded. It passes exactly what :func:`decode_event` passes.

    Raises:
        UndecodableEventError: as :func:`decode_event`.
    """
    event, as_stored = _decode(data, seq, subject, None)
    # JSON whitespace may hold newlines; the encoder never writes one.
    if as_stored and b"\n" not in data:
        return data
    return encode_event(event)


def _decode(
    data: bytes,
    seq: int,
    subject: str,
    upcasters: dict[tuple[str, int], Upcaster] | None,
) -> tuple[Event, bool]:
    """The event, and whether ``data`` already was it at the current schema (typed fast
    path); else it went through :func:`_decode_slow` (upcasting, lenient conversion)."""
    try:
        event: Event = _decoder.decode(data)
    except msgspec.DecodeError as typed_error:
        return _decode_slow(data, seq, subject, upcasters, str(typed_error)), False
    if event.v == SCHEMA_VERSION:
        return event, True
    return _decode_slow(data, seq, subject, upcasters, ""), False


def _decode_slow(
    data: bytes,
    seq: int,
    subject: str,
    upcasters: dict[tuple[str, int], Upcaster] | None,
    typed_error: str,
) -> Event:
    def fail(why: str) -> UndecodableEventError:
        return UndecodableEventError(seq, subject, why)

    try:
        raw = _raw_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise fail(f"not a JSON object: {exc}") from exc
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise fail(f"unknown event type {str(kind)[:60]!r}")
    version = raw.get("v", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise fail(f"bad schema version {version!r}")
    if version > SCHEMA_VERSION:
        raise fail(f"schema version {version} is newer than this build ({SCHEMA_VERSION})")
    table = UPCASTERS if upcasters is None else upcasters
    while version < SCHEMA_VERSION:
        step = table.get((kind, version))
        if step is None:
            raise fail(f"no upcaster for {kind} v{version}")
        raw = step(raw)
        version += 1
        raw["v"] = version
    try:
        converted: Event = msgspec.convert(raw, Event, strict=False)
        return converted
    except msgspec.ValidationError as exc:
        raise fail(typed_error or str(exc)) from exc
