"""SessionLeased before and after proofs: an old grant still decodes, with no digest."""

from __future__ import annotations

from datetime import UTC, datetime

from events import SessionLeased, decode_event
from events.codec import current_json, encode_event

OLD = (
    b'{"type":"SessionLeased","tenant":"alice","attempt":3,"at":"2026-01-02T03:04:05Z","v":1,'
    b'"id":"e1","prev":"p0","trace":null,"kid":"0123456789abcdef","holder":"parser-1",'
    b'"lease_id":"l1","fence":17,"expires_at":"2026-01-02T03:09:05Z"}'
)


def test_a_grant_stored_before_proofs_decodes_without_a_digest() -> None:
    """The old bytes decode on the typed path with ``proof_digest=""`` (so no proof matches
    it) and stay as stored for the projection (no rewrite)."""
    event = decode_event(OLD)
    assert isinstance(event, SessionLeased)
    assert event.proof_digest == ""
    assert (event.lease_id, event.fence) == ("l1", 17)
    assert current_json(OLD) is OLD


def test_a_new_grant_carries_its_digest() -> None:
    """A grant with a digest encodes it beside the lease's fields."""
    at = datetime(2026, 1, 2, tzinfo=UTC)
    event = SessionLeased(
        tenant="a", attempt=1, at=at, holder="h", lease_id="l", fence=1, expires_at=at,
        proof_digest="ab" * 32,
    )  # fmt: skip
    assert b'"proof_digest":"' + b"ab" * 32 + b'"' in encode_event(event)
    assert decode_event(encode_event(event)) == event
