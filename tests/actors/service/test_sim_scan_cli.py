"""`tgqr sim scan --password` against a running service: the phone's 2FA password comes from
stdin (or a file), never from the command line, and it is the one the login then needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.service import NatsServer

from ._cli import err, out, tgqr
from .conftest import Driver

pytestmark = pytest.mark.anyio


async def test_the_scan_password_comes_from_stdin_or_a_file(
    driver: Driver, nats_server: NatsServer, tmp_path: Path
) -> None:
    """A user created by a scan with ``--password`` (stdin) has exactly that 2FA password;
    ``--password-file`` works the same; ``--password VALUE`` is refused before anything runs."""
    assert (await driver.command("bob", "start"))["ok"]
    await driver.wait_for("bob", "QrIssued")
    scanned = await tgqr(
        nats_server, "sim", "scan", "--tenant", "bob", "--user", "1002", "--password",
        stdin=b"correct horse\n",
    )  # fmt: skip
    assert scanned.returncode == 0, err(scanned)
    assert out(scanned) == "user 1002 scanned bob\n"
    assert "correct horse" not in " ".join(map(str, scanned.args))
    await driver.wait_for("bob", "PasswordRequired")
    assert (await driver.command("bob", "password", password="correct horse"))["ok"]
    await driver.wait_for("bob", "Authorized")

    secret = tmp_path / "pw"
    secret.write_text("battery staple\n")
    assert (await driver.command("carol", "start"))["ok"]
    await driver.wait_for("carol", "QrIssued")
    from_file = await tgqr(
        nats_server, "sim", "scan", "--tenant", "carol", "--user", "1003",
        "--password-file", str(secret),
    )  # fmt: skip
    assert from_file.returncode == 0, err(from_file)
    await driver.wait_for("carol", "PasswordRequired")
    assert (await driver.command("carol", "password", password="battery staple"))["ok"]
    await driver.wait_for("carol", "Authorized")

    refused = await tgqr(
        nats_server, "sim", "scan", "--tenant", "dave", "--user", "1004", "--password", "pw"
    )
    assert refused.returncode == 2
    assert "unrecognized arguments" in err(refused)
