"""A query or a scan whose body is refused gets ``invalid_request`` in plain words that name the
field and its limits: never msgspec's decoder text (``Expected `int` >= 1 - at `$.window_s```),
never the value sent (a scan may carry a 2FA password). Over the running service and a real
nats-server, as an app sees it."""

from __future__ import annotations

import pytest

from tests.actors.service.conftest import Driver

pytestmark = pytest.mark.anyio

SECRET = "hunter2-" + "x" * 1024  # a password too long to accept: the reply must not echo it

CASES = [
    ("tgqr.query.metrics", b'{"window_s": 0}', "window_s must be an integer from 1 to 31622400"),
    ("tgqr.query.metrics", b'{"window_s": "1h"}', "window_s must be an integer from 1 to 31622400"),
    ("tgqr.query.status", b'{"tenant": 5}', "tenant must be a string"),
    ("tgqr.query.health", b"42", "the body must be a JSON object"),
    ("tgqr.query.status", b"{nope", "the body is not valid JSON"),
    ("tgqr.sim.scan", b"{}", "user_id is required: an integer of at least 1"),
    ("tgqr.sim.scan", b'{"user_id": 0}', "user_id must be an integer of at least 1"),
    ("tgqr.sim.scan", b'{"user_id": 1, "dc_id": 9}', "dc_id must be an integer from 1 to 5"),
    (
        "tgqr.sim.scan",
        b'{"user_id": 1, "tenant": "a", "surprise": true}',
        "unknown field 'surprise': it may hold user_id, tenant, url, password, dc_id",
    ),
    (
        "tgqr.sim.scan",
        b'{"user_id": 1, "tenant": "a", "password": "%s"}' % SECRET.encode(),
        "password must be a string of 1 to 1024 characters",
    ),
]


async def test_bad_query_and_scan_bodies_are_refused_in_plain_words(driver: Driver) -> None:
    """Each bad body: ``invalid_request`` whose message is exactly the plain sentence (before:
    msgspec's text, e.g. ``Expected `int` >= 1 - at `$.window_s```)."""
    for subject, body, message in CASES:
        reply = await driver.request(subject, raw=body)
        assert reply["ok"] is False, (subject, body)
        assert reply["error"] == {"code": "invalid_request", "message": message}
        assert "hunter2" not in reply["error"]["message"]
