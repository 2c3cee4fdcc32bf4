"""Audit verification: walk the log and report the first place the chains break.

Checks, per message in stream order: the stream sequence continues (a gap is a deleted
message), the data decodes, the subject's tenant owns the event, the MAC matches the exact
stored bytes under the chain key (an altered or forged event fails here), and ``prev`` is the
MAC of the tenant's previous event (a deleted or reordered event fails here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .chain import ChainKey
from .log import EventLog, Record, Undecodable

__all__ = ["ChainBreak", "ChainVerifier", "VerifyReport", "verify_log"]


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where and why verification failed."""

    seq: int
    tenant: str
    reason: str

    def __str__(self) -> str:
        return f"sequence {self.seq} (tenant {self.tenant or '?'}): {self.reason}"


@dataclass(slots=True)
class VerifyReport:
    """What a verification walk saw."""

    checked: int = 0
    tenants: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> ChainBreak | None:
        return min(self.breaks, key=lambda b: b.seq) if self.breaks else None


class ChainVerifier:
    """Incremental verifier: ``feed`` every item of ``read_all`` in order, then ``finish``.

    ``start`` is the first stream sequence expected (1 for a whole-log audit). With
    ``tenant`` set only that tenant's chain is checked, but sequence continuity is still
    checked over the whole stream.
    """

    def __init__(self, key: ChainKey, *, tenant: str | None = None, start: int = 1) -> None:
        self._key = key
        self._tenant = tenant
        self._next_seq = start
        self._last_mac: dict[str, str] = {}
        self.report = VerifyReport()

    def feed(self, item: Record | Undecodable) -> None:
        if item.seq != self._next_seq and item.seq > self._next_seq:
            self._break(self._next_seq, "", f"missing sequences {self._next_seq}..{item.seq - 1}")
        self._next_seq = item.seq + 1
        if isinstance(item, Undecodable):
            self._break(item.seq, "", f"undecodable: {item.error.why}")
            return
        if self._tenant is not None and item.tenant != self._tenant:
            return
        self.report.checked += 1
        event = item.event
        if event.tenant != item.tenant:
            self._break(item.seq, item.tenant, f"event claims tenant {event.tenant!r}")
            return
        if not item.mac or not self._key.check(item.data, item.mac):
            self._break(item.seq, item.tenant, "MAC mismatch: event altered or forged")
        expected_prev = self._last_mac.get(item.tenant, "")
        if item.tenant not in self._last_mac:
            self.report.tenants += 1
        if event.prev != expected_prev:
            self._break(
                item.seq, item.tenant, "chain link broken: previous event deleted or reordered"
            )
        self._last_mac[item.tenant] = item.mac

    def finish(self, last_seq: int) -> VerifyReport:
        """Close the walk; ``last_seq`` is the stream's last sequence (a deleted tail shows)."""
        if last_seq >= self._next_seq:
            self._break(self._next_seq, "", f"missing sequences {self._next_seq}..{last_seq}")
        return self.report

    def _break(self, seq: int, tenant: str, reason: str) -> None:
        self.report.breaks.append(ChainBreak(seq, tenant, reason))


async def verify_log(log: EventLog, key: ChainKey, *, tenant: str | None = None) -> VerifyReport:
    """Verify the whole log (or one tenant's chain) from sequence 1."""
    last = await log.last_seq()
    verifier = ChainVerifier(key, tenant=tenant)
    async for item in log.read_all(1):
        verifier.feed(item)
    return verifier.finish(last)
