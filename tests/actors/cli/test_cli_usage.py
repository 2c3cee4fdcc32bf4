"""Usage mistakes, caught before anything runs: one line on stderr naming the option and its
limit in plain words (exit 2), and ``--replicas`` above 1 on the embedded server refused up
front (exit 1), with nothing started and no data directory made."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from actors.cli import main
from actors.service import ConfigError, ServiceConfig


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert isinstance(exit_info.value.code, int)
    return exit_info.value.code, line


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["login", "alice", "--ttl", "0"],
            "tgqr: --ttl must be an integer from 1 to 600 (not '0') (see `tgqr login --help`)",
        ),
        (
            ["link", "alice", "--ttl", "ten"],
            "tgqr: --ttl must be an integer from 1 to 600 (not 'ten') (see `tgqr link --help`)",
        ),
        (
            ["login", "alice", "--expect-user", "0"],
            (
                "tgqr: --expect-user must be an integer of at least 1 (not '0') "
                "(see `tgqr login --help`)"
            ),
        ),
        (
            ["login", "a.b"],
            (
                "tgqr: tenant must be 1 to 64 characters: letters, digits, _ and - only "
                "(not 'a.b') (see `tgqr login --help`)"
            ),
        ),
        (
            ["sim", "scan", "--tenant", "alice", "--user", "7", "--dc", "9"],
            "tgqr: --dc must be an integer from 1 to 5 (not '9') (see `tgqr sim scan --help`)",
        ),
    ],
)
def test_a_bad_option_is_one_line_naming_its_limit(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _fails(argv, capsys) == (2, line)


def test_replicas_on_the_embedded_server_are_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tgqr up --replicas 3` without --nats: one line, at once, nothing made or started."""
    data = tmp_path / "data"
    started = time.monotonic()
    code, line = _fails(["up", "--replicas", "3", "--data", str(data)], capsys)
    assert code == 1
    assert line.startswith(
        "tgqr: --replicas 3 needs a NATS cluster: the embedded nats-server is one node"
    )
    assert time.monotonic() - started < 2
    assert not data.exists()


def test_replicas_are_checked_in_the_settings() -> None:
    assert ServiceConfig.from_env({}, nats="nats://h1,nats://h2", replicas=3).replicas == 3
    assert ServiceConfig.from_env({}, replicas=1).replicas == 1
    for replicas, nats in ((3, None), (0, "nats://h1"), (6, "nats://h1")):
        with pytest.raises(ConfigError, match="--replicas"):
            ServiceConfig.from_env({}, nats=nats, replicas=replicas)
