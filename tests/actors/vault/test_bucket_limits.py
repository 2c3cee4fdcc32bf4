"""The buckets beside the log are bounded like it: limits on bytes, messages, value size and
consumers, set on a new bucket and on one made before them without losing a key; a full bucket
refuses new keys and deletes none."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import nats
import pytest
from cryptography.fernet import Fernet, MultiFernet
from nats.js import JetStreamContext, api

from actors.gateway import KvDedupe
from actors.service import NatsServer
from actors.vault import KvSessionVault, VaultUnavailableError
from events import StorageLimits, StoragePolicy
from events.jsstorage import BUCKET_CONSUMER_IDLE_S

pytestmark = pytest.mark.anyio

KEYS = MultiFernet([Fernet(Fernet.generate_key())])


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    yield nc.jetstream()
    await nc.drain()


def assert_limited(config: api.StreamConfig, limits: StorageLimits) -> None:
    assert config.max_bytes == limits.max_bytes
    assert config.max_msgs == limits.max_msgs
    assert config.max_msg_size == limits.max_msg_size
    assert config.max_consumers == limits.max_consumers
    assert config.discard == api.DiscardPolicy.NEW
    assert config.consumer_limits is not None
    assert config.consumer_limits.inactive_threshold == BUCKET_CONSUMER_IDLE_S


async def test_a_new_sessions_bucket_has_the_limits(js: JetStreamContext) -> None:
    """The vault's bucket is made with the policy's limits and stays history 1, leader reads."""
    await KvSessionVault.open(js, KEYS)
    config = (await js.stream_info("KV_tgqr_sessions")).config
    assert_limited(config, StoragePolicy().sessions)
    assert (config.max_msgs_per_subject, config.allow_direct) == (1, False)


async def test_an_old_sessions_bucket_gains_limits_and_keeps_its_sessions(
    js: JetStreamContext,
) -> None:
    """A bucket made without limits (as before them) is updated in place at start."""
    old = await js.create_key_value(api.KeyValueConfig(bucket="tgqr_sessions", history=1))
    await KvSessionVault(old, KEYS).put("alice", "session-a", stage="authorized")
    vault = await KvSessionVault.open(js, KEYS)
    assert_limited((await js.stream_info("KV_tgqr_sessions")).config, StoragePolicy().sessions)
    entry = await vault.get("alice")
    assert entry is not None
    assert entry.session == "session-a"


async def test_a_full_sessions_bucket_refuses_new_tenants_and_keeps_the_others(
    js: JetStreamContext,
) -> None:
    """At its key limit a new tenant's session is refused; stored ones stay and can still be
    replaced (one value per key)."""
    limits = dataclasses.replace(StoragePolicy().sessions, max_msgs=2)
    vault = await KvSessionVault.open(js, KEYS, limits=limits)
    await vault.put("alice", "a", stage="authorized")
    await vault.put("bob", "b", stage="authorized")
    with pytest.raises(VaultUnavailableError, match="maximum messages"):
        await vault.put("carol", "c", stage="authorized")
    await vault.put("alice", "a2", stage="authorized")
    assert await vault.tenants() == ["alice", "bob"]


async def test_the_dedupe_bucket_has_limits_and_keeps_its_window(js: JetStreamContext) -> None:
    """The dedupe bucket is bounded too; an existing one keeps its entries' max age."""
    await js.create_key_value(api.KeyValueConfig(bucket="tgqr_dedupe", history=1, ttl=120.0))
    await KvDedupe.open(js)
    config = (await js.stream_info("KV_tgqr_dedupe")).config
    assert_limited(config, StoragePolicy().dedupe)
    assert config.max_age == 120.0
