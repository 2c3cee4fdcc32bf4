"""Stored messages and what decoding makes of them: a :class:`Record` or an :class:`Undecodable`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from ._tenant import tenant_of_subject
from .catalogue import Event
from .codec import decode_event
from .errors import UndecodableEventError

__all__ = ["Record", "StoredMessage", "Undecodable", "decode_stored"]


class StoredMessage(msgspec.Struct, frozen=True, gc=False):
    """One message as the log stores it, not decoded: what bulk readers (the projector) take.

    ``stored_ns`` is the store's timestamp in nanoseconds since the epoch (0 if unknown).
    A msgspec Struct because readers build one per message on their hottest path.
    """

    seq: int
    subject: str
    data: bytes
    mac: str
    stored_ns: int = 0

    @property
    def stored_at(self) -> datetime | None:
        """``stored_ns`` as an aware UTC datetime (None if unknown)."""
        if not self.stored_ns:
            return None
        return datetime.fromtimestamp(self.stored_ns / 1e9, UTC)


@dataclass(frozen=True, slots=True)
class Record:
    """One stored event with its stream position, its MAC and its exact bytes."""

    seq: int
    tenant: str
    event: Event
    mac: str
    data: bytes
    stored_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A message on an event subject that is not a valid event (see ``error``)."""

    seq: int
    subject: str
    data: bytes
    mac: str
    error: UndecodableEventError


def decode_stored(message: StoredMessage) -> Record | Undecodable:
    """Decode one stored message: a :class:`Record`, or :class:`Undecodable` saying why."""
    seq, subject, data, mac = message.seq, message.subject, message.data, message.mac
    try:
        tenant = tenant_of_subject(subject)
        event = decode_event(data, seq=seq, subject=subject)
    except UndecodableEventError as exc:
        return Undecodable(seq, subject, data, mac, exc)
    except ValueError as exc:
        return Undecodable(seq, subject, data, mac, UndecodableEventError(seq, subject, str(exc)))
    return Record(seq, tenant, event, mac, data, message.stored_at)
