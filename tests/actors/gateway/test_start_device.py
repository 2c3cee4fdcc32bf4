"""``start``'s ``device``: validated and bounded, refused in plain words, carried to the
command unchanged."""

from __future__ import annotations

import json

import pytest

from actors.gateway._parse import BadRequestError, parse_command
from actors.login import Start
from events import DeviceInfo


def _start(body: object) -> Start:
    _, _, command = parse_command("tgqr.cmd.acme.start", json.dumps(body).encode())
    assert isinstance(command, Start)
    return command


def _refused(body: object) -> str:
    with pytest.raises(BadRequestError) as refused:
        parse_command("tgqr.cmd.acme.start", json.dumps(body).encode())
    reply = json.loads(refused.value.reply)
    assert reply["error"]["code"] == "invalid_request"
    message: str = reply["error"]["message"]
    return message


def test_a_device_reaches_the_start_command() -> None:
    """Every given field is kept; missing ones stay empty (the service's defaults)."""
    command = _start(
        {"device": {"model": "Acme Parser", "system": "Ubuntu 24.04", "lang": "pt-br"}}
    )
    assert command.device == DeviceInfo(model="Acme Parser", system="Ubuntu 24.04", lang="pt-br")
    assert _start({}).device is None


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ({"model": ""}, "device.model must be a string of 1 to 64 characters"),
        ({"model": "x" * 65}, "device.model must be a string of 1 to 64 characters"),
        ({"model": "Acme\nParser"}, "device.model must be a string of 1 to 64 characters"),
        ({"system": "\u202eLinux"}, "device.system must be a string of 1 to 64 characters"),
        ({"app_version": "1" * 33}, "device.app_version must be a string of 1 to 32 characters"),
        ({"lang": "EN"}, "device.lang must be a string of 2 to 10 characters: small letters"),
        ({"lang": "e"}, "device.lang must be a string of 2 to 10 characters"),
        ({"colour": "red"}, "unknown field 'colour' in device: it may hold model, system"),
        ({"model": 7}, "device.model must be a string"),
    ],
)
def test_bad_device_fields_are_refused_in_plain_words(device: object, words: str) -> None:
    """Control characters, bidi overrides, overlong or unknown fields: ``invalid_request``
    naming the field and its limits, never the value sent."""
    message = _refused({"device": device})
    assert message.startswith(words), message
    assert "Parser" not in message
    assert "\u202e" not in message


def test_a_device_that_is_not_an_object_is_refused() -> None:
    assert _refused({"device": "Acme"}).startswith("device must be")
