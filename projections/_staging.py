"""What a batch becomes before DuckDB folds it, and the status view's query.

:func:`stage` checks every message with the codec (:func:`events.current_json`: the projection
reads exactly what :func:`events.decode_event` reads) and, given the chain key, its MAC; the
good ones are joined into two strings, the rest become dead letters, and dead letters on a
tenant's subject quarantine it (the ``quarantine`` table) until a ``QuarantineLifted`` event
names them. :data:`STATUS_SQL` shows such a tenant as ``quarantined``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from events import (
    EVENT_SUBJECT_PREFIX,
    SERVICE_PREFIX,
    ChainKey,
    StoredMessage,
    UndecodableEventError,
    current_json,
    tenant_of_subject,
)

__all__ = ["STATUS_COLUMNS", "STATUS_SQL", "Staged", "quarantine_rows", "stage"]


STATUS_COLUMNS: Final = (
    "tenant",
    "state",
    "attempt",
    "user_id",
    "qr_url",
    "qr_expires_at",
    "dc_id",
    "started_at",
    "updated_at",
    "last_event",
    "last_seq",
    "attempts",
    "qr_issued",
    "flood_waits",
    "restarts",
    "lease_holder",
    "lease_expires_at",
    "proxy",
)
_SERVICE_SUBJECTS: Final = EVENT_SUBJECT_PREFIX + SERVICE_PREFIX
_COUNTERS: Final = frozenset({"attempt", "attempts", "qr_issued", "flood_waits", "restarts"})


def _status_column(name: str) -> str:
    if name == "tenant":
        return "coalesce(s.tenant, q.tenant) AS tenant"
    if name == "state":
        # A tenant whose subject holds messages that do not verify (not released yet).
        return "CASE WHEN q.tenant IS NULL THEN s.state ELSE 'quarantined' END AS state"
    if name in _COUNTERS:
        return f"coalesce(s.{name}, 0) AS {name}"
    return f"s.{name} AS {name}"


STATUS_SQL: Final = (
    "SELECT * FROM (SELECT "  # noqa: S608 (fixed column names)
    + ", ".join(_status_column(name) for name in STATUS_COLUMNS)
    + " FROM tenant_status s FULL OUTER JOIN"
    # (the service's own chains, ``_telegram``, are no tenants)
    " (SELECT DISTINCT tenant FROM quarantine WHERE NOT starts_with(tenant, '_')) q"
    " ON s.tenant = q.tenant)"
)


@dataclass(frozen=True, slots=True)
class Staged:
    """A batch ready for DuckDB: the events as two strings, and the dead letters."""

    seqs: str
    docs: str
    events: int
    dead: list[tuple[int, str, str]]
    lifted: list[int]
    heads: dict[str, str]  # tenant -> MAC of its last good event in this batch
    service: list[tuple[int, bytes]]  # (seq, doc) of the service's own chains (``_telegram``)


def stage(
    items: Sequence[StoredMessage],
    key: ChainKey | None,
    heads: Mapping[str, str | None] | None = None,
) -> Staged:
    """Check every message with the codec (:func:`events.current_json`: the projection
    reads exactly what :func:`events.decode_event` reads), given the chain key its MAC (a
    forged event never counts), and given the tenants' chain ``heads`` (the MAC of each
    tenant's last projected event; None: not known, accept the next link) its ``prev`` link
    (a genuine event stored again never counts twice); join the good ones."""
    seqs: list[str] = []
    docs: list[bytes] = []
    dead: list[tuple[int, str, str]] = []
    lifted: list[int] = []
    moved: dict[str, str] = {}
    service: list[tuple[int, bytes]] = []
    for item in items:
        try:
            if key is not None and not (item.mac and key.check(item.data, item.mac)):
                dead.append((item.seq, item.subject, "MAC mismatch: event altered or forged"))
                continue
            doc = current_json(item.data, seq=item.seq, subject=item.subject)
        except UndecodableEventError as exc:
            dead.append((item.seq, item.subject, exc.why[:500]))
            continue
        if heads is not None:
            broken = _broken_link(item, doc, heads, moved)
            if broken:
                dead.append((item.seq, item.subject, broken))
                continue
        if b'"type":"QuarantineLifted"' in doc:
            lifted.extend(_LIFTED.decode(doc).sequences)
        if item.subject.startswith(_SERVICE_SUBJECTS):
            service.append((item.seq, doc))  # checked like any chain, kept out of tenants'
            continue
        docs.append(doc)
        seqs.append(str(item.seq))
    joined = b"\n".join(docs).decode()
    return Staged(",".join(seqs), joined, len(docs), dead, lifted, moved, service)


def _broken_link(
    item: StoredMessage, doc: bytes, heads: Mapping[str, str | None], moved: dict[str, str]
) -> str:
    """Why ``item`` does not extend its tenant's chain ("" when it does; ``moved`` then
    records it as the tenant's new head)."""
    try:
        tenant = tenant_of_subject(item.subject)
    except ValueError:
        return "not a tenant's event subject"
    expected = moved[tenant] if tenant in moved else heads.get(tenant, "")
    if expected is not None and _LINK.decode(doc).prev != expected:
        return "chain link broken: previous event deleted or reordered"
    moved[tenant] = item.mac
    return ""


class _Link(msgspec.Struct):
    prev: str = ""


_LINK: Final = msgspec.json.Decoder(_Link)


class _Lifted(msgspec.Struct):
    sequences: list[int]


_LIFTED: Final = msgspec.json.Decoder(_Lifted)


def quarantine_rows(dead: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    rows = []
    for seq, subject, reason in dead:
        try:
            rows.append((seq, tenant_of_subject(subject), reason))
        except ValueError:
            continue  # not a tenant's subject: a dead letter only
    return rows
