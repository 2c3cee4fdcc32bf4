"""The events package's errors: a shallow hierarchy under :class:`EventLogError`."""

from __future__ import annotations

__all__ = [
    "ConcurrencyConflictError",
    "EventLogError",
    "EventLogFullError",
    "EventLogUnavailableError",
    "EventTooLargeError",
    "StorageLimitError",
    "TenantQuarantinedError",
    "UndecodableEventError",
]


class EventLogError(Exception):
    """Base class of every error the event log raises."""


class ConcurrencyConflictError(EventLogError):
    """Raised by ``append`` when the tenant's head is not the expected one.

    Another writer appended first. The caller must re-read the tenant's events and decide again;
    it must never retry the same events blindly (that would fork the history).
    """

    def __init__(self, tenant: str, expected: int, actual: int | None) -> None:
        self.tenant = tenant
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"tenant {tenant!r}: expected head {expected}, log is at {actual}"
            if actual is not None
            else f"tenant {tenant!r}: expected head {expected}, log moved on"
        )


class EventLogUnavailableError(EventLogError):
    """Raised when the log did not answer after the retries (timeouts, no responders, 503)."""


class EventLogFullError(EventLogUnavailableError):
    """Raised by ``append`` when the log is at its size limit (bytes or messages) and refuses
    new events. Nothing was stored; nothing old is ever deleted to make room, so appends stay
    refused until an operator raises the limit (the service warns before: see
    :mod:`events.storage`)."""

    def __init__(self, tenant: str, why: str) -> None:
        self.tenant = tenant
        self.why = why
        super().__init__(f"the event log is full, nothing stored for {tenant!r}: {why}")


class EventTooLargeError(EventLogError):
    """Raised by ``append`` before anything is published when one of the events, sealed, is
    larger than the log takes (``size`` and ``limit`` in bytes, headers included). None of the
    events of that call is stored."""

    def __init__(self, tenant: str, event_type: str, size: int, limit: int) -> None:
        self.tenant = tenant
        self.event_type = event_type
        self.size = size
        self.limit = limit
        super().__init__(
            f"event {event_type} of {tenant!r} is {size} bytes, more than the log's limit "
            f"of {limit}: nothing stored"
        )


class StorageLimitError(EventLogError):
    """Raised at start when the NATS server cannot reserve a store's size limit (its
    ``max_bytes``): the message names the setting to lower."""


class UndecodableEventError(EventLogError):
    """Raised for stored data that is not a known event of a supported schema version.

    ``seq`` names the stream sequence so an operator can inspect the message.
    """

    def __init__(self, seq: int, subject: str, why: str) -> None:
        self.seq = seq
        self.subject = subject
        self.why = why
        super().__init__(f"undecodable event at stream sequence {seq} ({subject}): {why}")


class TenantQuarantinedError(EventLogError):
    """Raised when a tenant's stored messages include some that do not verify.

    A message on the tenant's subject that does not decode, names another tenant, fails its
    chain MAC or breaks the chain link was not written by tgqr as it is: it changes no state,
    and the tenant is quarantined until an operator releases it (``tgqr tenant repair``).
    ``bad`` lists ``(sequence, reason)`` pairs; the message never holds event contents.
    """

    def __init__(self, tenant: str, bad: tuple[tuple[int, str], ...]) -> None:
        self.tenant = tenant
        self.bad = bad
        first = bad[0][0] if bad else 0
        super().__init__(
            f"tenant {tenant!r} is quarantined: {len(bad)} stored message(s) do not verify "
            f"(first at sequence {first})"
        )
