"""``projections rebuild`` draws the service's rebuild from ``tgqr.query.health`` polls."""

from __future__ import annotations

import json

import anyio
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from actors.cli._admin import _watch_rebuild
from actors.cli._progress import Progress

from .test_progress import Terminal

pytestmark = pytest.mark.anyio


async def test_the_rebuild_is_drawn_from_health_replies(nc: Client) -> None:
    """A failed poll and a reply without a rebuild draw nothing; ``rebuild: {seq, target}``
    is drawn as ``seq/target``."""
    replies = [
        {"ok": False, "error": {"code": "rate_limited", "message": "slow down"}},
        {"ok": True, "lag_events": 0},
        {"ok": True, "rebuild": {"seq": 5, "target": 10}},
    ]
    asked = anyio.Event()

    async def health(msg: Msg) -> None:
        if not replies:  # the last reply was handled before this poll was sent
            asked.set()
            return
        await msg.respond(json.dumps(replies.pop(0)).encode())

    await nc.subscribe("tgqr.query.health", cb=health)
    terminal = Terminal()
    progress = Progress("rebuilding", 0, stream=terminal, every_s=0)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_rebuild, nc, progress)
            await asked.wait()
            tg.cancel_scope.cancel()
    assert (progress.done, progress.total) == (5, 10)
    assert terminal.getvalue().count("\r") == 1
    assert "rebuilding: 5/10 events (50%)" in terminal.getvalue()
