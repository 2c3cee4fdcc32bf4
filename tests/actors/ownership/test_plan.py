"""The ownership rules without I/O: the partition hash, rendezvous hashing and the plan."""

from __future__ import annotations

from collections import Counter

from actors.ownership import Claim, Drop, OwnerView, Release, partition_of, plan, preferred

GRACE, SETTLE = 1.5, 1.0


def test_partition_is_fnv1a_like_the_servers_partition_mapping() -> None:
    # FNV-1a 32 of "a" is 0xe40c292c (the published test vector).
    assert partition_of("a", 2**32 - 1) == 0xE40C292C % (2**32 - 1)
    assert partition_of("", 7) == 0x811C9DC5 % 7
    spread = Counter(partition_of(f"tenant-{n}", 32) for n in range(3200))
    assert len(spread) == 32
    assert max(spread.values()) < 2 * min(spread.values())


def test_preferred_is_stable_and_a_leaver_moves_only_its_own() -> None:
    members = ["a-1", "b-2", "c-3"]
    before = {p: preferred(p, members) for p in range(64)}
    assert {p: preferred(p, reversed(members)) for p in range(64)} == before
    after = {p: preferred(p, ["a-1", "c-3"]) for p in range(64)}
    moved = [p for p in range(64) if before[p] != after[p]]
    assert moved
    assert all(before[p] == "b-2" for p in moved)
    assert preferred(0, []) is None


def view(me: str, members: dict[str, float], partitions: int = 8) -> OwnerView:
    return OwnerView(me, partitions, members=dict(members))


def test_a_sole_instance_claims_every_partition_at_once() -> None:
    alone = view("a", {"a": 0.0})
    assert plan(alone, 0.0, grace_s=GRACE, settle_s=SETTLE) == [Claim(p, 0) for p in range(8)]


def test_a_dead_owners_partitions_go_to_the_preferred_first_then_to_anyone() -> None:
    me = view("a", {"a": 0.0, "b": 0.0})
    me.owners = {p: ("dead", 10 + p) for p in range(8)}
    mine = {p for p in range(8) if preferred(p, ["a", "b"]) == "a"}
    first = plan(me, 5.0, grace_s=GRACE, settle_s=SETTLE)
    assert first == [Claim(p, 10 + p) for p in sorted(mine)]
    later = plan(me, 5.0 + GRACE, grace_s=GRACE, settle_s=SETTLE)
    assert later == [Claim(p, 10 + p) for p in range(8)]  # b never claimed its share


def test_a_live_owner_is_left_alone_and_a_released_key_is_claimed_by_revision() -> None:
    me = view("a", {"a": 0.0, "b": 0.0}, partitions=2)
    me.owners = {0: ("b", 5), 1: ("", 9)}
    actions = plan(me, 10.0, grace_s=0.0, settle_s=SETTLE)
    assert actions == [Claim(1, 9)]


def test_a_holder_hands_over_to_a_settled_newcomer_and_drops_what_was_taken() -> None:
    me = view("a", {"a": 0.0}, partitions=8)
    me.owners = {p: ("a", 100 + p) for p in range(8)}
    me.held = {p: 100 + p for p in range(8)}
    assert plan(me, 1.0, grace_s=GRACE, settle_s=SETTLE) == []
    me.members["b"] = 2.0
    assert plan(me, 2.5, grace_s=GRACE, settle_s=SETTLE) == []  # b not settled yet
    handed = [p for p in range(8) if preferred(p, ["a", "b"]) == "b"]
    assert plan(me, 3.0, grace_s=GRACE, settle_s=SETTLE) == [Release(p, 100 + p) for p in handed]
    me.owners[handed[0]] = ("b", 500)  # b took one over (a newer revision): stop it here
    assert Drop(handed[0]) in plan(me, 3.0, grace_s=GRACE, settle_s=SETTLE)


def test_an_instance_that_is_not_alive_claims_nothing() -> None:
    lapsed = view("a", {"b": 0.0})
    assert plan(lapsed, 10.0, grace_s=0.0, settle_s=0.0) == []


def test_after_an_outage_the_others_get_a_ttl_and_its_own_come_back_at_once() -> None:
    """Right after the bucket was out of reach (``steal`` off), a partition whose owner's
    heartbeat expired meanwhile is left to it; one naming this instance is taken back."""
    me = view("a", {"a": 0.0, "b": 0.0}, partitions=4)
    me.owners = {0: ("gone", 5), 1: ("a", 6), 2: ("", 7), 3: ("b", 8)}
    actions = plan(me, 10.0, grace_s=GRACE, settle_s=SETTLE, steal=False)
    assert actions == [Claim(1, 6), *([Claim(2, 7)] if preferred(2, ["a", "b"]) == "a" else [])]
    assert Claim(0, 5) in plan(me, 10.0, grace_s=0.0, settle_s=SETTLE, steal=True)
