"""Only the service creates keys: every other command loads the chain and vault keys or fails
in one line naming where it looked, and leaves no file behind; `sim scan` never takes a
password from the command line."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from actors.cli._admin import _scan_password
from actors.cli._main import build_parser, main
from actors.service import ChainKeyMissingError, load_chain_key
from actors.vault import VaultKeyError, load_key_ring

HINT = "pass --data DIR (the data directory of `tgqr up`) or set"


@pytest.fixture(autouse=True)
def _no_keys_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TGQR_CHAIN_KEY", "TGQR_VAULT_KEYS", "TGQR_DATA"):
        monkeypatch.delenv(name, raising=False)


def test_loading_without_create_makes_no_file(tmp_path: Path) -> None:
    """Without ``create`` a missing key is an error naming the variable and the file."""
    data = tmp_path / "data"
    with pytest.raises(ChainKeyMissingError) as chain:
        load_chain_key(data, env={}, create=False)
    assert str(chain.value) == (
        f"no chain key: TGQR_CHAIN_KEY is not set and {data / 'chain.key'} does not exist"
    )
    with pytest.raises(VaultKeyError) as vault:
        load_key_ring(data, env={}, create=False)
    assert str(vault.value) == (
        f"no vault keys: TGQR_VAULT_KEYS is not set and {data / 'vault.key'} does not exist"
    )
    assert not data.exists()


def test_the_service_creates_and_the_others_then_load(tmp_path: Path) -> None:
    """What the service created (0600) is what a later reader without ``create`` gets; the
    variables win over the files."""
    created = load_chain_key(tmp_path, env={}, create=True)
    assert stat.S_IMODE((tmp_path / "chain.key").stat().st_mode) == 0o600
    assert load_chain_key(tmp_path, env={}, create=False).id == created.id
    from_env = load_chain_key(tmp_path, env={"TGQR_CHAIN_KEY": "cd" * 32}, create=False)
    assert from_env.id != created.id
    ring = load_key_ring(tmp_path, env={}, create=True)
    assert load_key_ring(tmp_path, env={}, create=False).decrypt(ring.encrypt(b"x")) == b"x"


@pytest.mark.parametrize(
    ("argv", "where", "env"),
    [
        (["audit", "--verify"], "chain.key", "TGQR_CHAIN_KEY"),
        (["tenant", "repair", "alice", "--yes"], "chain.key", "TGQR_CHAIN_KEY"),
        (["vault", "rotate"], "vault.key", "TGQR_VAULT_KEYS"),
    ],
)
def test_commands_elsewhere_fail_in_one_line_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], where: str, env: str
) -> None:
    """From a directory with no keys: exit 1, one line on stderr saying where it looked and
    what to do, no key file (nor the directory) created, and no NATS needed to find out."""
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--data", str(elsewhere), "--nats", "nats://127.0.0.1:1"])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("tgqr: no ")
    assert f"{env} is not set and {elsewhere / where} does not exist: {HINT} {env}" in line
    assert not elsewhere.exists()


def test_sim_scan_reads_the_password_never_from_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--password`` takes no value and asks (here: one line of stdin); ``--password-file``
    reads the file's first line; a value after ``--password`` is a usage error."""
    parser = build_parser()
    base = ["sim", "scan", "--tenant", "alice", "--user", "7"]
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert _scan_password(parser.parse_args([*base, "--password"])) == "correct horse"
    secret = tmp_path / "pw"
    secret.write_text("battery staple\nignored\n")
    assert _scan_password(parser.parse_args([*base, "--password-file", str(secret)])) == (
        "battery staple"
    )
    assert _scan_password(parser.parse_args(base)) is None
    with pytest.raises(SystemExit) as usage:
        parser.parse_args([*base, "--password", "hunter2"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--password", "--password-file", str(secret)])


def test_sim_scan_password_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty stdin or an empty or missing file is a clear error, before any connection."""
    base = ["sim", "scan", "--tenant", "alice", "--user", "7", "--nats", "nats://127.0.0.1:1"]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for extra, message in (
        (["--password"], "tgqr: no password on standard input"),
        (["--password-file", str(empty)], f"tgqr: --password-file {empty} holds no password"),
        (["--password-file", str(tmp_path / "nope")], "tgqr: cannot read --password-file"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([*base, *extra])
        assert exit_info.value.code == 1
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith(message)
