"""A simulator with a store keeps its RSA key there: after a restart (another process, as
``tgqr sim serve`` restarted) it signs the key exchange with the key its clients already
trust, and ``register_with_telethon`` knows every key this process's simulators use."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from actors.sim import Simulator, SimulatorError
from actors.sim._rsakey import KEY_FILE, known_public_keys


def test_the_key_survives_a_restart_on_the_same_store(tmp_path: Path) -> None:
    """Two simulators on one store: one key, kept 0600; another store: another key."""
    first = Simulator(store=tmp_path / "sim")
    again = Simulator(store=tmp_path / "sim")
    other = Simulator(store=tmp_path / "elsewhere")
    assert first.public_key_pem == again.public_key_pem
    assert other.public_key_pem != first.public_key_pem
    mode = stat.S_IMODE((tmp_path / "sim" / KEY_FILE).stat().st_mode)
    assert mode == 0o600
    assert {first.public_key_pem, other.public_key_pem} <= set(known_public_keys())


def test_an_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    """Junk in rsa.pem is an error naming the file, not a new key."""
    store = tmp_path / "sim"
    store.mkdir()
    (store / KEY_FILE).write_text("not a key")
    with pytest.raises(SimulatorError, match=KEY_FILE):
        Simulator(store=store)
