"""Audit verification: walk the log and report every place the chains break.

Per message in stream order: the stream sequence continues (a gap is a deleted message), and
the message is the next event of its subject's tenant by the rules every reader applies
(:func:`events.quarantine.fault_of`): it decodes, names its own tenant, names this chain key,
its MAC matches the exact stored bytes, and its ``prev`` is the MAC of the tenant's previous
*verified* event. A message that fails is a break and does not extend its tenant's chain, as for
the log's readers, so a tenant's breaks are exactly the bad messages that quarantine it. A later
verified ``QuarantineLifted`` of the same tenant naming a break's sequence marks it released; it
stays in the report. A gap cannot be released: nothing is left to look at.

The report tells a wrong key from forgeries: when events name key ids, none names this key's
and none verifies, the key does not match the log (:attr:`VerifyReport.key_mismatch`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from ._tenant import tenant_of_subject
from .catalogue import QuarantineLifted
from .chain import ChainKey
from .log import EventLog, Record, Undecodable
from .quarantine import fault_of

__all__ = ["ChainBreak", "ChainVerifier", "VerifyReport", "verify_log", "verify_tail"]


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where and why verification failed; ``released_by``: the sequence of the verified
    ``QuarantineLifted`` that released this message (None: not released)."""

    seq: int
    tenant: str
    reason: str
    released_by: int | None = None

    def __str__(self) -> str:
        text = f"sequence {self.seq} (tenant {self.tenant or '?'}): {self.reason}"
        if self.released_by is not None:
            text += f"; released by QuarantineLifted at sequence {self.released_by}"
        return text


@dataclass(slots=True)
class VerifyReport:
    """What a verification walk saw.

    ``checked``: messages of the audited tenant(s) examined; ``verified``: those that are
    part of their chain; ``key_ids``: how many events of the whole stream (every tenant, even
    when one is audited) name each chain key id; ``key_id``: the id of the key the walk used.
    """

    key_id: str = ""
    checked: int = 0
    verified: int = 0
    tenants: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)
    key_ids: Counter[str] = field(default_factory=Counter)

    @property
    def unreleased(self) -> list[ChainBreak]:
        """The breaks no ``QuarantineLifted`` released, in stream order."""
        return [b for b in self.breaks if b.released_by is None]

    @property
    def released(self) -> list[ChainBreak]:
        """The bad messages a ``QuarantineLifted`` released, in stream order."""
        return [b for b in self.breaks if b.released_by is not None]

    @property
    def ok(self) -> bool:
        """No break, or only released ones: every reader sees each chain whole."""
        return not self.unreleased

    @property
    def first_break(self) -> ChainBreak | None:
        """The first break not released (None when :attr:`ok`)."""
        return min(self.unreleased, key=lambda b: b.seq, default=None)

    @property
    def key_mismatch(self) -> bool:
        """The walk's key is not the log's: events name key ids, none names this key's, and
        none verifies under it. (A forger can copy an id from the log, but then an honest event
        named it first; events stored before key ids name none and cannot tell.)"""
        return bool(self.key_ids) and self.key_id not in self.key_ids and self.verified == 0

    @property
    def other_key_ids(self) -> list[str]:
        """The key ids events name other than the walk's key's, most named first."""
        return [kid for kid, _ in self.key_ids.most_common() if kid != self.key_id]


class ChainVerifier:
    """Incremental verifier: ``feed`` every item of ``read_all`` in order, then ``finish``.

    ``start`` is the first stream sequence expected (1 for a whole-log audit; later, the
    first link of each tenant cannot be checked). With ``tenant`` set only that tenant's chain
    is checked, but sequence continuity is still checked over the whole stream.
    """

    def __init__(self, key: ChainKey, *, tenant: str | None = None, start: int = 1) -> None:
        self._key = key
        self._tenant = tenant
        self._next_seq = start
        self._first_link: str | None = "" if start <= 1 else None
        self._links: dict[str, str | None] = {}
        self._open: dict[str, dict[int, int]] = {}  # tenant -> bad seq -> index in breaks
        self.report = VerifyReport(key_id=key.id)

    def feed(self, item: Record | Undecodable) -> None:
        if item.seq > self._next_seq:
            self._break(self._next_seq, "", f"missing sequences {self._next_seq}..{item.seq - 1}")
        self._next_seq = max(self._next_seq, item.seq + 1)
        report = self.report
        if isinstance(item, Record) and item.event.kid:
            report.key_ids[item.event.kid] += 1
        tenant = _tenant_of(item)
        if self._tenant is not None and tenant != self._tenant:
            return
        report.checked += 1
        if tenant and tenant not in self._links:
            report.tenants += 1
            self._links[tenant] = self._first_link
        # A subject that names no tenant holds only undecodable messages: always a fault.
        reason = fault_of(item, tenant, self._key, self._links.get(tenant))
        if reason or not isinstance(item, Record):
            self._open.setdefault(tenant, {})[item.seq] = len(report.breaks)
            self._break(item.seq, tenant, reason)
            return
        report.verified += 1
        self._links[tenant] = item.mac
        if isinstance(item.event, QuarantineLifted):
            self._release(tenant, item.event.sequences, item.seq)

    def finish(self, last_seq: int) -> VerifyReport:
        """Close the walk; ``last_seq`` is the stream's last sequence (a deleted tail shows)."""
        if last_seq >= self._next_seq:
            self._break(self._next_seq, "", f"missing sequences {self._next_seq}..{last_seq}")
        return self.report

    def _break(self, seq: int, tenant: str, reason: str) -> None:
        self.report.breaks.append(ChainBreak(seq, tenant, reason))

    def _release(self, tenant: str, sequences: tuple[int, ...], by: int) -> None:
        open_breaks = self._open.get(tenant, {})
        breaks = self.report.breaks
        for seq in sequences:
            index = open_breaks.pop(seq, None)
            if index is not None:
                breaks[index] = dataclasses.replace(breaks[index], released_by=by)


def _tenant_of(item: Record | Undecodable) -> str:
    """The tenant whose subject holds ``item`` ("" for a subject that names none)."""
    if isinstance(item, Record):
        return item.tenant
    try:
        return tenant_of_subject(item.subject)
    except ValueError:
        return ""


async def verify_log(log: EventLog, key: ChainKey, *, tenant: str | None = None) -> VerifyReport:
    """Verify the whole log (or one tenant's chain) from sequence 1.

    Raises:
        EventLogError: the log could not be read.
    """
    last = await log.last_seq()
    verifier = ChainVerifier(key, tenant=tenant)
    async for item in log.read_all(1):
        verifier.feed(item)
    return verifier.finish(last)


async def verify_tail(log: EventLog, key: ChainKey, *, last: int = 256) -> VerifyReport:
    """Verify only the log's last ``last`` messages: a cheap check that ``key`` is the log's
    before writing with it (see :attr:`VerifyReport.key_mismatch`; ``verified > 0`` says it
    is). Links into the part not read are not checked.

    Raises:
        EventLogError: the log could not be read.
    """
    end = await log.last_seq()
    start = max(1, end - last + 1)
    verifier = ChainVerifier(key, start=start)
    async for item in log.read_all(start):
        verifier.feed(item)
    return verifier.finish(end)
