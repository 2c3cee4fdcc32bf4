"""Audit replay: filter the log and format it one line per event; verify its chains.

Uses only the :class:`EventLog` port. Human output never shows a MAC, ``prev`` or a login
token in full (they are shortened); ``json`` output is the complete record.

A message that is not part of its chain stays in the replay, with a :class:`Mark` saying so:
from a verification (:func:`marks_of`: why it fails, and the ``QuarantineLifted`` that released
it, if any), or, without the key, from the log as stored (:func:`released_marks`: the sequences
``QuarantineLifted`` events name, unverified like the rest of a plain replay).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec

from ._tenant import tenant_of_subject
from .catalogue import EVENT_TYPES, QuarantineLifted
from .chain import ChainKey
from .log import EventLog, Record, Undecodable, decode_stored
from .quarantine import show_key_id
from .verify import VerifyReport, verify_log

__all__ = [
    "Mark",
    "Marks",
    "UnknownEventTypeError",
    "audit_verify",
    "format_record",
    "key_mismatch_text",
    "marks_of",
    "released_marks",
    "replay",
]

_QR_PREFIX: Final = "tg://login?token="
_ENVELOPE: Final = frozenset({"tenant", "attempt", "at", "v", "id", "prev", "trace", "kid"})
_LIFTED_TAG: Final = b"QuarantineLifted"
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


@dataclass(frozen=True, slots=True)
class Mark:
    """What the audit knows about one stored message beyond its content.

    ``bad``: why it is not part of its tenant's chain ("" when unknown: a replay without
    verification); ``released_by``: the sequence of the ``QuarantineLifted`` naming it.
    """

    tenant: str
    bad: str = ""
    released_by: int | None = None

    def __str__(self) -> str:
        parts = [f"not in the chain: {self.bad}"] if self.bad else []
        if self.released_by is not None:
            parts.append(f"released by QuarantineLifted at sequence {self.released_by}")
        return "; ".join(parts)


class Marks:
    """The marks of a replay, by stream sequence."""

    __slots__ = ("_by_seq",)

    def __init__(self, marks: dict[int, Mark] | None = None) -> None:
        self._by_seq = marks or {}

    def __len__(self) -> int:
        return len(self._by_seq)

    def get(self, item: Record | Undecodable) -> Mark | None:
        """The mark of ``item``, if any (a mark is for the message on its tenant's subject)."""
        mark = self._by_seq.get(item.seq)
        return mark if mark is not None and mark.tenant == (_tenant_of(item) or "") else None


def marks_of(report: VerifyReport) -> Marks:
    """Every message a verification found outside its chain, with why and its release."""
    return Marks({b.seq: Mark(b.tenant, b.reason, b.released_by) for b in report.breaks})


async def released_marks(log: EventLog, *, tenant: str | None = None) -> Marks:
    """The sequences the log's ``QuarantineLifted`` events name, without verifying anything:
    what a replay without the key can say. One pass over the log that decodes only the
    messages mentioning ``QuarantineLifted``.

    Raises:
        EventLogError: the log could not be read.
    """
    marks: dict[int, Mark] = {}
    async for chunk in log.read_chunks(1):
        for message in chunk:
            if _LIFTED_TAG not in message.data:
                continue
            item = decode_stored(message)
            if not isinstance(item, Record) or not isinstance(item.event, QuarantineLifted):
                continue
            if item.event.tenant != item.tenant or (tenant is not None and item.tenant != tenant):
                continue
            for seq in item.event.sequences:
                if seq < item.seq:
                    marks.setdefault(seq, Mark(item.tenant, released_by=item.seq))
    return Marks(marks)


def key_mismatch_text(report: VerifyReport, source: str) -> str:
    """One line for a verification whose key is not the log's (``source``: where the key came
    from, e.g. a file name or an environment variable)."""
    named = ", ".join(show_key_id(kid) for kid in report.other_key_ids[:3])
    more = f" and {len(report.other_key_ids) - 3} more" if len(report.other_key_ids) > 3 else ""
    return (
        f"the chain key does not match this log: its events were sealed with key id {named}"
        f"{more}, the key from {source} has id {report.key_id}"
    )


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


def _marked(obj: dict[str, Any], mark: Mark | None) -> bytes:
    if mark is not None:
        if mark.bad:
            obj["bad"] = mark.bad
        if mark.released_by is not None:
            obj["released_by"] = mark.released_by
    return _encoder.encode(obj)


def format_record(
    record: Record | Undecodable, *, json: bool = False, mark: Mark | None = None
) -> str:
    """One line for ``record``: sequence, event time, tenant, type and fields, then ``mark``.

    ``json=True`` gives one JSON object with everything (``event`` as stored, ``mac`` in
    full, and the mark as ``bad`` and ``released_by``); the human form shortens tokens, MACs,
    ``prev`` and ids, and ends with `` | `` and the mark.
    """
    tail = f" | {mark}" if mark is not None else ""
    if isinstance(record, Undecodable):
        if json:
            return _marked(
                {
                    "seq": record.seq,
                    "subject": record.subject,
                    "undecodable": record.error.why,
                    "data": record.data.decode(errors="replace"),
                    "mac": record.mac,
                },
                mark,
            ).decode()
        return (
            f"#{record.seq} ? {_tenant_of(record) or record.subject} UNDECODABLE "
            f"reason={_show('', record.error.why)} mac={_short(record.mac) or '-'}{tail}"
        )
    event = record.event
    kind = type(event).__name__
    if json:
        return _marked(
            {
                "seq": record.seq,
                "stored_at": record.stored_at,
                "tenant": record.tenant,
                "type": kind,
                "event": msgspec.to_builtins(event),
                "mac": record.mac,
            },
            mark,
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
    return " ".join(parts) + tail


async def audit_verify(log: EventLog, key: ChainKey, tenant: str | None = None) -> VerifyReport:
    """Check the hash chains of the whole log (or one tenant's); see :mod:`events.verify`.

    Raises:
        EventLogError: the log could not be read.
    """
    return await verify_log(log, key, tenant=tenant)
