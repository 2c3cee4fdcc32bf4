"""The simulator's state kept in a directory: same ports, accounts, keys and logins again."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
import pytest

from actors.sim import Simulator, SimulatorError
from actors.sim._mtproto import KeyRecord
from actors.sim._persist import STATE_FILE, SimSnapshot, load_snapshot, save_snapshot, store_lock
from actors.sim._srp import Verifier
from actors.sim._state import User

pytestmark = pytest.mark.anyio


def test_a_snapshot_round_trips(tmp_path: Path) -> None:
    """Ports, users (a 2FA verifier too), auth keys per DC, logins and pending 2FA come back
    as they were; the file is readable by its owner only."""
    verifier = Verifier.create("pw", os.urandom)
    snapshot = SimSnapshot(
        ports={1: 4001, 2: 4002},
        users=[User(7, 1, "Seven", 99, ""), User(8, 2, "Eight", -5, "pet", verifier)],
        keys={1: [KeyRecord(b"a" * 256, 11, -3)], 2: [KeyRecord(b"b" * 256, 22, 4)]},
        authorized={(1, 11): 7},
        pending={(2, 22): 8},
    )
    save_snapshot(tmp_path, snapshot)
    assert stat.S_IMODE((tmp_path / STATE_FILE).stat().st_mode) == 0o600
    back = load_snapshot(tmp_path)
    assert back is not None
    assert (back.ports, back.users, back.authorized, back.pending) == (
        snapshot.ports,
        snapshot.users,
        snapshot.authorized,
        snapshot.pending,
    )
    assert [(k.auth_key, k.key_id, k.salt) for k in back.keys[2]] == [(b"b" * 256, 22, 4)]
    assert load_snapshot(tmp_path / "none") is None


def test_a_broken_state_file_is_a_clear_error(tmp_path: Path) -> None:
    """Junk in the state file: SimulatorError naming the file, not a traceback from json."""
    (tmp_path / STATE_FILE).write_text("{junk")
    with pytest.raises(SimulatorError, match=STATE_FILE):
        Simulator(store=tmp_path)


async def test_a_new_simulator_on_the_store_takes_up_where_the_last_stopped(
    tmp_path: Path,
) -> None:
    """Users added to one simulator exist in the next one on the same directory, which
    listens on the same ports."""
    first = Simulator(store=tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(first.run)
        first.add_user(42, dc_id=2, password="pw")
        ports = {dc: first.dc_address(dc)[1] for dc in (1, 2)}
        tg.cancel_scope.cancel()
    second = Simulator(store=tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(second.run)
        assert {dc: second.dc_address(dc)[1] for dc in (1, 2)} == ports
        assert second.statistics().users == 1
        tg.cancel_scope.cancel()


async def test_a_store_in_use_is_left_to_its_simulator(tmp_path: Path) -> None:
    """A second simulator on a directory another one holds runs on other ports and writes
    nothing there; the lock is free again once the first stops."""
    first, second = Simulator(store=tmp_path), Simulator(store=tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(first.run)
        await tg.start(second.run)
        assert first.dc_address(1) != second.dc_address(1)
        second.add_user(5)
        tg.cancel_scope.cancel()
    back = load_snapshot(tmp_path)
    assert back is not None
    assert back.users == []
    with store_lock(tmp_path) as got:
        assert got
