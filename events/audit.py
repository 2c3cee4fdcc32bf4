"""Audit replay: filter the log and format it one line per event; verify its chains.

Uses only the :class:`EventLog` port. Human output never shows a MAC, ``prev`` or a login
token in full (they are shortened); ``json`` output is the complete record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import Any, Final

import msgspec

from ._tenant import tenant_of_subject
from .catalogue import EVENT_TYPES
from .chain import ChainKey
from .log import EventLog, Record, Undecodable
from .verify import VerifyReport, verify_log

__all__ = ["UnknownEventTypeError", "audit_verify", "format_record", "replay"]

_QR_PREFIX: Final = "tg://login?token="
_ENVELOPE: Final = frozenset({"tenant", "attempt", "at", "v", "id", "prev", "trace"})
_encoder: Final = msgspec.json.Encoder()


class UnknownEventTypeError(ValueError):
    """Raised by :func:`replay` when ``types`` names an event type that does not exist."""


def _tenant_of(item: Record | Undecodable) -> str | None:
    if isinstance(item, Record):
        return item.tenant
    try:
        return tenant_of_subject(item.subject)
    except ValueError:
        return None


async def replay(
    log: EventLog,
    *,
    tenant: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    types: Collection[str] | None = None,
) -> AsyncIterator[Record | Undecodable]:
    """The log from sequence 1 to its current end, filtered, in stream order.

    Filters: ``tenant``; event time ``since <= at < until``; event type names in ``types``.
    An undecodable message is yielded whenever it is not excluded by ``tenant`` (it has no
    time or type to filter on, and an audit must not hide it) unless ``types`` is given.

    Raises:
        UnknownEventTypeError: ``types`` holds a name that is not an event type.
        EventLogError: the log could not be read.
    """
    wanted = None if types is None else frozenset(types)
    if wanted is not None and (unknown := sorted(wanted - EVENT_TYPES.keys())):
        raise UnknownEventTypeError(f"unknown event type(s): {', '.join(unknown)}")
    async for item in log.read_all(1):
        if tenant is not None and _tenant_of(item) != tenant:
            continue
        if isinstance(item, Undecodable):
            if wanted is None:
                yield item
            continue
        event = item.event
        if since is not None and event.at < since:
            continue
        if until is not None and event.at >= until:
            continue
        if wanted is not None and type(event).__name__ not in wanted:
            continue
        yield item


def _short(text: str, keep: int = 8) -> str:
    return text if len(text) <= keep else text[:keep] + "…"


def _show(name: str, value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if name == "url" and isinstance(value, str) and value.startswith(_QR_PREFIX):
        return _QR_PREFIX + _short(value[len(_QR_PREFIX) :], 4)
    if isinstance(value, str):
        return _encoder.encode(value).decode() if (" " in value or not value) else value
    return "null" if value is None else str(value)


def format_record(record: Record | Undecodable, *, json: bool = False) -> str:
    """One line for ``record``: sequence, event time, tenant, type and fields.

    ``json=True`` gives one JSON object with everything (``event`` as stored, ``mac`` in
    full); the human form shortens tokens, MACs, ``prev`` and ids.
    """
    if isinstance(record, Undecodable):
        if json:
            return _encoder.encode(
                {
                    "seq": record.seq,
                    "subject": record.subject,
                    "undecodable": record.error.why,
                    "data": record.data.decode(errors="replace"),
                    "mac": record.mac,
                }
            ).decode()
        return (
            f"#{record.seq} ? {_tenant_of(record) or record.subject} UNDECODABLE "
            f"reason={_show('', record.error.why)} mac={_short(record.mac) or '-'}"
        )
    event = record.event
    kind = type(event).__name__
    if json:
        return _encoder.encode(
            {
                "seq": record.seq,
                "stored_at": record.stored_at,
                "tenant": record.tenant,
                "type": kind,
                "event": msgspec.to_builtins(event),
                "mac": record.mac,
            }
        ).decode()
    fields = msgspec.structs.asdict(event)
    parts = [
        f"#{record.seq}",
        _show("at", event.at),
        record.tenant,
        kind,
        f"attempt={event.attempt}",
    ]
    parts += [
        f"{name}={_show(name, value)}" for name, value in fields.items() if name not in _ENVELOPE
    ]
    parts.append(f"id={_short(event.id) or '-'}")
    parts.append(f"prev={_short(event.prev) or '-'}")
    parts.append(f"mac={_short(record.mac) or '-'}")
    if event.trace:
        parts.append(f"trace={_short(event.trace, 16)}")
    return " ".join(parts)


async def audit_verify(log: EventLog, key: ChainKey, tenant: str | None = None) -> VerifyReport:
    """Check the hash chains of the whole log (or one tenant's); see :mod:`events.verify`.

    Raises:
        EventLogError: the log could not be read.
    """
    return await verify_log(log, key, tenant=tenant)
