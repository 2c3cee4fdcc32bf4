"""The dedupe store contract: the memory fake and the JetStream KV adapter behave alike."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext

from actors.gateway import DedupeStore, KvDedupe, MemoryDedupe
from actors.gateway._dedupe import PENDING, dedupe_key

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "jetstream"])
async def store(request: pytest.FixtureRequest, js: JetStreamContext) -> DedupeStore:
    if request.param == "memory":
        return MemoryDedupe()
    return await KvDedupe.open(js, window_s=60)


async def test_store_contract(store: DedupeStore) -> None:
    """The first claim owns the key; later claims see it pending, then the settled reply; a
    released claim can be taken again."""
    key = dedupe_key("tgqr.cmd.alice.start", "id-1")
    assert await store.claim(key) is None
    assert await store.claim(key) == PENDING
    await store.settle(key, b'{"ok":true}')
    assert await store.claim(key) == b'{"ok":true}'
    other = dedupe_key("tgqr.cmd.bob.start", "id-1")
    assert other != key
    assert await store.claim(other) is None
    await store.release(other)
    assert await store.get(other) is None
    assert await store.claim(other) is None
