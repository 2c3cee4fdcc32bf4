"""A request body the gateway refuses gets ``invalid_request`` with a message in plain words
that names the field and its limits, never msgspec's decoder text, never the value sent."""

from __future__ import annotations

import json

import pytest

from actors.gateway._parse import BadRequestError, parse_command
from actors.gateway._sessions import parse_session


def _refusal(subject: str, body: bytes) -> str:
    parse = parse_session if subject.startswith("tgqr.session.") else parse_command
    with pytest.raises(BadRequestError) as refused:
        parse(subject, body)
    reply = json.loads(refused.value.reply)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid_request"
    message: str = reply["error"]["message"]
    assert "Expected" not in message
    assert "$." not in message
    assert "`" not in message
    return message


@pytest.mark.parametrize(
    ("subject", "body", "message"),
    [
        ("tgqr.cmd.a.start", b'{"ttl_s": 0}', "ttl_s must be an integer from 1 to 600"),
        ("tgqr.cmd.a.start", b'{"ttl_s": 601}', "ttl_s must be an integer from 1 to 600"),
        ("tgqr.cmd.a.start", b'{"ttl_s": "10"}', "ttl_s must be an integer from 1 to 600"),
        ("tgqr.cmd.a.start", b'{"ttl_s": 1.5}', "ttl_s must be an integer from 1 to 600"),
        (
            "tgqr.cmd.a.start",
            b'{"expected_user_id": true}',
            "expected_user_id must be an integer of at least 1",
        ),
        ("tgqr.cmd.a.start", b'{"force": 1}', "force must be true or false"),
        (
            "tgqr.cmd.a.start",
            b'{"surprise": 1}',
            "unknown field 'surprise': it may hold expected_user_id, ttl_s, force, device, proxy",
        ),
        ("tgqr.cmd.a.start", b"[]", "the body must be a JSON object"),
        ("tgqr.cmd.a.start", b"{not json", "the body is not valid JSON"),
        (
            "tgqr.cmd.a.password",
            b"{}",
            "password is required: a string of 1 to 1024 characters",
        ),
        ("tgqr.cmd.a.cancel", b'{"x": 1}', "unknown field 'x': it takes no fields"),
        ("tgqr.cmd.a.link", b'{"ttl_s": 0}', "ttl_s must be an integer from 1 to 600"),
        (
            "tgqr.session.a.lease",
            b'{"holder": "a b", "public_key": "AAAA"}',
            "holder must be a string of 1 to 64 characters: letters, digits and _.- only",
        ),
        (
            "tgqr.session.a.lease",
            b'{"holder": "a", "public_key": "AAAA", "ttl_s": 5}',
            "ttl_s must be an integer from 10 to 3600",
        ),
        (
            "tgqr.session.a.lease",
            b'{"holder": "a", "public_key": "AAAA", "suite": "rsa"}',
            'suite must be one of "mlkem768-x25519", "x25519"',
        ),
    ],
)
def test_the_message_names_the_field_and_its_limits(
    subject: str, body: bytes, message: str
) -> None:
    assert _refusal(subject, body) == message


def test_the_value_sent_is_never_in_the_message() -> None:
    """A password too long, or of the wrong type, is refused without repeating it."""
    secret = "correct-horse-battery-staple-" * 40
    for body in ({"password": secret}, {"password": [secret]}):
        message = _refusal("tgqr.cmd.a.password", json.dumps(body).encode())
        assert message == "password must be a string of 1 to 1024 characters"
        assert "correct-horse" not in message


def test_an_unknown_field_name_is_cut() -> None:
    name = "n" * 500
    message = _refusal("tgqr.cmd.a.start", json.dumps({name: 1}).encode())
    assert len(message) < 120
