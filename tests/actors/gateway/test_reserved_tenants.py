"""Aggregate ids starting with ``_`` are the service's own chains (``_telegram``): a command
or a session request for one is refused with ``invalid_tenant`` before it reaches an actor."""

from __future__ import annotations

import json

import pytest

from actors.gateway._parse import BadRequestError, parse_command
from actors.gateway._sessions import parse_session


@pytest.mark.parametrize(
    "subject",
    [
        "tgqr.cmd._telegram.start",
        "tgqr.cmd._x.cancel",
        "tgqr.session._telegram.lease",
    ],
)
def test_service_chains_take_no_commands(subject: str) -> None:
    """``_telegram`` (or any ``_`` id) as a tenant: invalid_tenant."""
    parse = parse_session if subject.startswith("tgqr.session.") else parse_command
    with pytest.raises(BadRequestError) as refused:
        parse(subject, b"{}")
    reply = json.loads(refused.value.reply)
    assert reply["error"]["code"] == "invalid_tenant"
    assert "reserved" in reply["error"]["message"]


def test_an_underscore_inside_a_tenant_id_is_fine() -> None:
    """Only the first character is reserved."""
    tenant, verb, _ = parse_command("tgqr.cmd.acme_1.start", b"{}")
    assert (tenant, verb) == ("acme_1", "start")
