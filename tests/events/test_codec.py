"""The codec: round trips for every event type, golden samples, upcasting, bad data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    DeviceInfo,
    LoginStarted,
    UndecodableEventError,
    current_json,
    decode_event,
    encode_event,
)
from events.catalogue import EventBase

tenants = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC),
)


def strategy_for(cls: type[EventBase]) -> st.SearchStrategy[EventBase]:
    """Every field filled with an arbitrary value of its declared type."""
    overrides: dict[str, Any] = {
        "tenant": tenants,
        "at": times,
        "attempt": st.integers(1, 10**6),
        "v": st.just(SCHEMA_VERSION),
        "id": st.text(max_size=40),
        "prev": st.text(max_size=64),
        "trace": st.none() | st.text(max_size=60),
        "kid": st.just("") | st.text("0123456789abcdef", min_size=16, max_size=16),
    }
    for name in ("deadline", "expires_at"):
        overrides[name] = times
    overrides["retry_at"] = st.none() | times
    # JSON has no infinity or NaN: a delay is always a finite number of seconds.
    overrides["delay_s"] = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
    return st.builds(cls, **{k: v for k, v in overrides.items() if k in cls.__struct_fields__})


any_event = st.one_of([strategy_for(cls) for cls in EVENT_TYPES.values()])


@given(any_event)
def test_every_event_round_trips(event: EventBase) -> None:
    """decode(encode(e)) == e for every event type and any field values."""
    assert decode_event(encode_event(event)) == event  # type: ignore[arg-type]


@given(any_event)
def test_encoded_events_name_their_type(event: EventBase) -> None:
    """Each event is one JSON object whose `type` is the event name."""
    raw = msgspec.json.decode(encode_event(event))  # type: ignore[arg-type]
    assert raw["type"] == type(event).__name__
    assert raw["tenant"] == event.tenant


AT = "2026-01-02T03:04:05Z"
# Every event since chain key ids: the envelope ends with the sealing key's id.
ENVELOPE = (
    f'"tenant":"alice","attempt":3,"at":"{AT}","v":1,"id":"e1","prev":"p0","trace":null,'
    '"kid":"0123456789abcdef"'
)
GOLDEN = {
    "LoginStarted": f'{{"type":"LoginStarted",{ENVELOPE},"expected_user_id":42,"deadline":"{AT}","device":{{"model":"Acme Parser","system":"Linux","app_version":"1.2","lang":"en"}},"proxy":"socks5://10.0.0.7:1080 #3f2a91c04b7e"}}',
    "QrIssued": f'{{"type":"QrIssued",{ENVELOPE},"url":"tg://login?token=abc","expires_at":"{AT}","dc_id":2}}',
    "Scanned": f'{{"type":"Scanned",{ENVELOPE}}}',
    "PasswordRequired": f'{{"type":"PasswordRequired",{ENVELOPE},"hint":"pet"}}',
    "PasswordRejected": f'{{"type":"PasswordRejected",{ENVELOPE},"tries_left":4}}',
    "Authorized": f'{{"type":"Authorized",{ENVELOPE},"user_id":42,"dc_id":2,"session_fingerprint":"ab12"}}',
    "Expired": f'{{"type":"Expired",{ENVELOPE}}}',
    "FloodWaited": f'{{"type":"FloodWaited",{ENVELOPE},"seconds":7,"method":"auth.exportLoginToken","retry_at":"{AT}"}}',
    "LoginFailed": f'{{"type":"LoginFailed",{ENVELOPE},"reason":"ownership_mismatch"}}',
    "LoginCancelled": f'{{"type":"LoginCancelled",{ENVELOPE}}}',
    "QuarantineLifted": f'{{"type":"QuarantineLifted",{ENVELOPE},"sequences":[7,9],"note":"junk from a test client"}}',
    "LoggedOut": f'{{"type":"LoggedOut",{ENVELOPE},"reason":"revoked"}}',
    "ActorRestarted": f'{{"type":"ActorRestarted",{ENVELOPE},"restart":2,"delay_s":1.1,"error":"RuntimeError"}}',
    "SessionLeased": f'{{"type":"SessionLeased",{ENVELOPE},"holder":"parser-1","lease_id":"l1","fence":17,"expires_at":"{AT}","proof_digest":"9f2c"}}',
    "SessionReleased": f'{{"type":"SessionReleased",{ENVELOPE},"lease_id":"l1","reason":"expired"}}',
    "SessionRevoked": f'{{"type":"SessionRevoked",{ENVELOPE},"noticed_by":"validation"}}',
    "TelegramDown": f'{{"type":"TelegramDown",{ENVELOPE},"dc":2,"failures":5,"retry_after_s":2.2}}',
    "TelegramUp": f'{{"type":"TelegramUp",{ENVELOPE},"dc":2,"down_s":31.5}}',
    "BackupTaken": (
        f'{{"type":"BackupTaken",{ENVELOPE},"backup_id":"20261203T120000Z-ab12","full":true,'
        '"first_seq":1,"last_seq":40,"bytes":8192}'
    ),
    "BackupFailed": f'{{"type":"BackupFailed",{ENVELOPE},"error":"BackupTargetError"}}',
}


def test_golden_samples_cover_the_catalogue() -> None:
    """Every event type has a golden sample: adding one without a sample fails here."""
    assert set(GOLDEN) == set(EVENT_TYPES)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_sample_decodes_and_reencodes_byte_for_byte(name: str) -> None:
    """A stored sample decodes and re-encodes identically: schema changes show up here."""
    data = GOLDEN[name].encode()
    event = decode_event(data)
    assert type(event).__name__ == name
    assert encode_event(event) == data


def test_events_stored_before_key_ids_still_decode() -> None:
    """An envelope without ``kid`` (stored before chain key ids) decodes with ``kid=""`` on
    the typed fast path, and its other fields are untouched."""
    old_envelope = ENVELOPE.replace(',"kid":"0123456789abcdef"', "")
    for name, sample in GOLDEN.items():
        old = sample.replace(ENVELOPE, old_envelope).encode()
        assert b'"kid"' not in old
        event = decode_event(old)
        assert type(event).__name__ == name
        assert event.kid == ""
        assert msgspec.structs.replace(event, kid="0123456789abcdef") == decode_event(
            sample.encode()
        )
        assert current_json(old) is old  # still current-schema JSON: no rewrite


def test_login_started_stored_before_devices_decodes_without_one() -> None:
    """A ``LoginStarted`` written before device fields existed decodes with ``device=None``
    (the service's defaults), and one with a device keeps every field."""
    old = f'{{"type":"LoginStarted",{ENVELOPE},"expected_user_id":42,"deadline":"{AT}"}}'
    event = decode_event(old.encode())
    assert isinstance(event, LoginStarted)
    assert event.device is None
    assert event.proxy == ""
    current = decode_event(GOLDEN["LoginStarted"].encode())
    assert isinstance(current, LoginStarted)
    assert current.device == DeviceInfo(
        model="Acme Parser", system="Linux", app_version="1.2", lang="en"
    )


def test_upcasting_chain_from_an_older_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the catalogue at v2, a v1 event is upcast through the registry before decoding."""
    import events.codec as codec

    monkeypatch.setattr(codec, "SCHEMA_VERSION", 2)

    def v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
        raw["hint"] = raw["hint"].upper()
        return raw

    data = b'{"type":"PasswordRequired","tenant":"a","attempt":1,"at":"2026-01-01T00:00:00Z","v":1,"hint":"pet"}'
    event = codec.decode_event(data, upcasters={("PasswordRequired", 1): v1_to_v2})
    assert event.hint == "PET"  # type: ignore[union-attr]
    assert event.v == 2
    with pytest.raises(UndecodableEventError, match="no upcaster"):
        codec.decode_event(data, upcasters={})


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not a JSON object"),
        (b"[1,2]", "not a JSON object"),
        (b'{"type":"Nope"}', "unknown event type"),
        (b'{"tenant":"a"}', "unknown event type"),
        (b'{"type":"Scanned","tenant":"a","attempt":1,"at":"2026-01-01T00:00:00Z","v":7}', "newer"),
        (b'{"type":"Scanned","tenant":"a","attempt":"x","at":"2026-01-01T00:00:00Z"}', "attempt"),
    ],
)
def test_bad_data_is_a_typed_error_naming_the_sequence(data: bytes, why: str) -> None:
    """Undecodable bytes raise UndecodableEventError with the stream sequence in it."""
    with pytest.raises(UndecodableEventError, match=why) as info:
        decode_event(data, seq=77, subject="tgqr.evt.a")
    assert info.value.seq == 77
    assert "77" in str(info.value)


@given(any_event)
def test_current_json_passes_current_bytes_through_and_rewrites_the_rest(
    event: EventBase,
) -> None:
    """Current-schema bytes come back as they are; the same event pretty-printed over
    several lines, or with a field in a lenient form, comes back as one canonical line."""
    data = encode_event(event)  # type: ignore[arg-type]
    assert current_json(data) is data
    pretty = msgspec.json.format(data, indent=2)
    assert b"\n" in pretty
    assert current_json(pretty) == data
    lenient = msgspec.json.encode({**msgspec.json.decode(data), "attempt": str(event.attempt)})
    assert current_json(lenient) == data


def test_current_json_refuses_what_decode_event_refuses() -> None:
    """Garbage raises the same typed error as decode_event, naming the sequence."""
    with pytest.raises(UndecodableEventError, match="unknown event type") as info:
        current_json(b'{"type":"Nope"}', seq=5, subject="tgqr.evt.a")
    assert info.value.seq == 5
