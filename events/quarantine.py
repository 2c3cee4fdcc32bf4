"""One tenant's chain as its readers see it: the events that verify, and those that do not.

Every reader of a tenant's log (actor hydration, the supervisor's crash path, startup resume,
the simulator's phone, the append's "maybe mine" check) goes through :func:`check_tenant`. A
message that does not decode, names another tenant, fails its MAC under the chain key or does
not link to the previous verified event is *bad*: it never changes any state, the next verified
event links past it, and its tenant is quarantined until a verified ``QuarantineLifted`` event
names it. :class:`events.verify.ChainVerifier` applies the same rules to the whole log, so the
audit's breaks of a tenant are exactly the bad messages its readers see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from .catalogue import QuarantineLifted
from .chain import ChainKey, Head
from .records import Record, Undecodable

__all__ = ["MAC_MISMATCH", "BadMessage", "TenantLog", "check_tenant", "fault_of", "show_key_id"]

MAC_MISMATCH: Final = "MAC mismatch: event altered or forged"
_KEY_ID_RE: Final = re.compile(r"[0-9a-f]{1,64}")


def show_key_id(kid: str) -> str:
    """``kid`` as it may appear in a message: as is when it looks like a key id, else quoted and
    cut short (the field is whatever the message's author wrote)."""
    return kid if _KEY_ID_RE.fullmatch(kid) else repr(kid[:24])


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A stored message on a tenant's subject that is not part of its chain, and why."""

    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class TenantLog:
    """A tenant's verified events, where its next event goes, and what did not verify.

    ``head`` has the sequence of the subject's last message (bad ones included: the store
    checks the next append against it) and the MAC of the last verified event (the next
    event's ``prev``). ``bad``: messages not released yet; ``released``: those a
    ``QuarantineLifted`` event named.
    """

    tenant: str
    records: tuple[Record, ...]
    head: Head
    bad: tuple[BadMessage, ...] = ()
    released: tuple[BadMessage, ...] = ()

    @property
    def quarantined(self) -> bool:
        return bool(self.bad)


def fault_of(item: Record | Undecodable, tenant: str, key: ChainKey, prev: str | None) -> str:
    """Why ``item`` is not the next event of ``tenant``'s chain ("" when it is).

    ``prev`` is the MAC the event must link to (None: do not check the link). An event that
    names another key id than ``key``'s was "sealed with another chain key": it fails whatever
    its MAC. Only one that names ``key`` (or, stored before key ids, names none) and fails its
    MAC under it is "altered or forged".
    """
    if isinstance(item, Undecodable):
        return f"undecodable: {item.error.why}"
    if item.tenant != tenant or item.event.tenant != tenant:
        return f"event claims tenant {item.event.tenant!r}"
    kid = item.event.kid
    if kid and kid != key.id:
        return f"sealed with another chain key (id {show_key_id(kid)})"
    if not item.mac or not key.check(item.data, item.mac):
        return MAC_MISMATCH
    if prev is not None and item.event.prev != prev:
        return "chain link broken: previous event deleted or reordered"
    return ""


def check_tenant(
    tenant: str,
    items: Iterable[Record | Undecodable],
    key: ChainKey,
    *,
    after: Head | None = None,
) -> TenantLog:
    """Walk ``tenant``'s stored messages in order (all of them, or those after ``after``)."""
    start = after or Head()
    records: list[Record] = []
    bad: list[BadMessage] = []
    released: list[BadMessage] = []
    last_seq, last_mac = start.seq, start.mac
    # Read from the middle without the previous MAC: the first link cannot be checked.
    link: str | None = None if start.seq and not start.mac else start.mac
    for item in items:
        last_seq = max(last_seq, item.seq)
        reason = fault_of(item, tenant, key, link)
        if reason or isinstance(item, Undecodable):
            bad.append(BadMessage(item.seq, reason))
            continue
        records.append(item)
        last_mac = link = item.mac
        event = item.event
        if isinstance(event, QuarantineLifted):
            lifted = set(event.sequences)
            released.extend(b for b in bad if b.seq in lifted)
            bad = [b for b in bad if b.seq not in lifted]
    return TenantLog(tenant, tuple(records), Head(last_seq, last_mac), tuple(bad), tuple(released))
