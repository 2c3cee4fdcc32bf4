"""The tenant hash chain: keyed, so that a forged event is detected, not only a reordered one.

Each event records in ``prev`` the MAC of the tenant's previous event (``""`` for the first).
An event's own MAC is HMAC-SHA256 over its exact stored bytes under the chain key; the log
stores it beside the event (header ``Tgqr-Mac``). Whoever lacks the key can neither alter an
event nor forge one that verifies; a deleted or reordered event breaks the next ``prev`` link.

Each event also names, in ``kid``, the id of the key that sealed it: the first 16 hex digits of
HMAC-SHA256(key, ``b"tgqr-chain-key-id"``): a MAC of a fixed label, like the event MACs beside
it, so it reveals no more about the key than they do (a bare hash of the key would be a
second, unkeyed handle on it). A reader whose key has another id knows that it holds the wrong
key, rather than taking every event for a forgery. The id is a name, not a proof: only the MAC
says whether an event is genuine.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Final

import msgspec

from .catalogue import Event
from .codec import encode_event

__all__ = ["KEY_ID_LENGTH", "MAC_HEADER", "ChainKey", "Head", "Sealed", "seal"]

MAC_HEADER: Final = "Tgqr-Mac"
KEY_ID_LENGTH: Final = 16
"""Hex digits of a chain key id."""
_KEY_ID_LABEL: Final = b"tgqr-chain-key-id"


class ChainKey:
    """The secret key of the hash chains. Its ``repr`` shows its id, never the key."""

    __slots__ = ("_id", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("chain key must be at least 16 bytes")
        self._key = key
        self._id = hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]

    @property
    def id(self) -> str:
        """The key's public id, recorded in every event it seals (``kid``)."""
        return self._id

    def __repr__(self) -> str:
        return f"ChainKey(id={self.id})"

    def mac(self, data: bytes) -> str:
        """HMAC-SHA256 of ``data`` as hex."""
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def check(self, data: bytes, mac: str) -> bool:
        """Whether ``mac`` is the MAC of ``data`` (constant-time)."""
        return hmac.compare_digest(self.mac(data), mac)


@dataclass(frozen=True, slots=True)
class Head:
    """Where a tenant's chain ends: stream sequence and MAC of its last event (0, "" if none)."""

    seq: int = 0
    mac: str = ""


@dataclass(frozen=True, slots=True)
class Sealed:
    """An event ready to append: id and ``prev`` set, encoded, MAC computed."""

    event: Event
    data: bytes
    mac: str


def seal(event: Event, prev: str, key: ChainKey) -> Sealed:
    """Link ``event`` after the event whose MAC is ``prev``, name ``key`` in it and compute
    its own MAC.

    An event that already has an id keeps it, so a retried append reuses its ``Nats-Msg-Id``.
    """
    linked = msgspec.structs.replace(
        event, id=event.id or os.urandom(16).hex(), prev=prev, kid=key.id
    )
    data = encode_event(linked)
    return Sealed(linked, data, key.mac(data))
