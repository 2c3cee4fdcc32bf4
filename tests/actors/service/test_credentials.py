"""Credentials of the roles and the service's start-up check of its own permissions.

The embedded server's credentials are random passwords in 0600 files, the server's config
holds only bcrypt hashes; external servers take an nkey seed, a ``.creds`` file or
``user:password@`` in the URL; the service names a missing permission in one line and warns
once when the server requires no authentication at all.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import anyio
import nkeys
import pytest

from actors.service import (
    ROLES,
    ConfigError,
    NatsServer,
    PermissionMissingError,
    Role,
    RoleCredentials,
    RunningService,
    ServiceConfig,
    Violations,
    connect_nats,
    ensure_credentials,
    redact_url,
    resolve_auth,
    run_service,
    start_nats_server,
)
from actors.service._natsserver import REPO_CONF
from events.jetstream import STREAM
from tests.conftest import AuthServer

from .test_roles import refused

pytestmark = pytest.mark.anyio


def test_credentials_are_random_private_files_made_once(tmp_path: Path) -> None:
    """0600 files in a 0700 directory, a different password per role, the same on reuse."""
    first = ensure_credentials(tmp_path)
    assert stat.S_IMODE((tmp_path / "creds").stat().st_mode) == 0o700
    for role, creds in first.items():
        assert creds.path is not None
        assert stat.S_IMODE(creds.path.stat().st_mode) == 0o600
        assert creds.user == role
        assert len(creds.password) >= 40
        assert creds.password not in repr(creds)
    assert len({c.password for c in first.values()}) == len(ROLES)
    assert ensure_credentials(tmp_path) == first


def test_the_server_config_holds_only_hashes(auth_nats_server: AuthServer) -> None:
    """The derived nats-server config (mode 0600) has a bcrypt hash per role, no password."""
    conf = auth_nats_server.server.store_dir / "nats-server.conf"
    text = conf.read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert text.count('PASSWORD: "$2a$') == len(ROLES)
    for creds in auth_nats_server.credentials.values():
        assert creds.password not in text


def test_resolve_auth_order_and_errors(tmp_path: Path) -> None:
    """--creds, then --nkey, then user:password@ in the URL, then the data dir's file."""
    ensure_credentials(tmp_path)
    seed = tmp_path / "app.nk"
    seed.write_text("SU...")
    creds = tmp_path / "app.creds"
    creds.write_text("jwt")
    by_file = resolve_auth("app", data_dir=tmp_path, creds=str(creds), env={})
    assert by_file.connect_options()["user_credentials"] == str(creds)
    by_env = resolve_auth("app", data_dir=tmp_path, env={"TGQR_NATS_NKEY": str(seed)})
    assert by_env.connect_options()["nkeys_seed"] == str(seed)
    by_url = resolve_auth("app", data_dir=tmp_path, urls=["h:2", "nats://bob:p%40w@h:1"], env={})
    assert by_url.connect_options()["password"] == "p@w"  # for every URL of the list
    assert by_url.describe() == "role app (user bob from the URL)"
    by_dir = resolve_auth("auditor", data_dir=tmp_path, env={})
    assert by_dir.connect_options()["inbox_prefix"] == "_INBOX_auditor"
    assert by_dir.credentials is not None
    assert by_dir.credentials.password not in by_dir.describe()
    with pytest.raises(ConfigError, match="no such file"):
        resolve_auth("app", data_dir=tmp_path, creds=str(tmp_path / "missing"), env={})
    with pytest.raises(ConfigError, match="not both"):
        resolve_auth("app", data_dir=tmp_path, creds=str(creds), nkey=str(seed), env={})
    assert redact_url("nats://a:pw@h:1,nats://tok@h2") == "nats://a:***@h:1,nats://***@h2"


def _server_with_app_as_nkey(
    tmp_path: Path, users: Mapping[Role, RoleCredentials]
) -> tuple[NatsServer, Path]:
    """The shipped config, with role app authenticating by nkey instead of a password."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "app.nk"
    seed_file.write_bytes(seed)
    text = REPO_CONF.read_text().replace(
        "{ user: app, password: $TGQR_APP_PASSWORD,", f"{{ nkey: {public},"
    )
    conf = tmp_path / "nkey.conf"
    conf.write_text(text)
    others: dict[Role, RoleCredentials] = {r: c for r, c in users.items() if r != "app"}
    return start_nats_server(tmp_path / "nkey-nats", conf_path=conf, users=others), seed_file


async def test_an_nkey_seed_connects_with_the_roles_permissions(tmp_path: Path) -> None:
    """`--nkey FILE` / TGQR_NATS_NKEY: role app by nkey, with app's permissions."""
    users = ensure_credentials(tmp_path / "data")
    server, seed_file = _server_with_app_as_nkey(tmp_path, users)
    try:
        auth = resolve_auth(
            "app", data_dir=tmp_path / "elsewhere", env={"TGQR_NATS_NKEY": str(seed_file)}
        )
        violations = Violations()
        app = await connect_nats([server.url], auth=auth, reconnect=False, violations=violations)
        with pytest.raises(Exception, match="stream not found"):
            await app.jetstream(timeout=2).stream_info(STREAM)  # permitted: an answer
        await refused(violations, lambda: app.publish("tgqr.evt.alice", b"x"))
        await app.close()
    finally:
        server.stop()


async def test_user_and_password_in_the_url(auth_nats_server: AuthServer) -> None:
    """`nats://app:PASSWORD@host:port` connects as app without any file."""
    password = auth_nats_server.credentials["app"].password
    url = auth_nats_server.url.replace("nats://", f"nats://app:{password}@")
    auth = resolve_auth("app", data_dir=Path("/nonexistent"), urls=[url], env={})
    violations = Violations()
    app = await connect_nats([url], auth=auth, reconnect=False, violations=violations)
    await refused(violations, lambda: app.publish("tgqr.evt.alice", b"x"))
    await app.close()


def _config(data: Path, url: str) -> ServiceConfig:
    env = {"TGQR_HTTP": "off"}
    return replace(ServiceConfig.from_env(env, data_dir=data, nats=url), throttle_s=(0.0, 0.0))


@pytest.mark.parametrize(
    ("grant", "rest", "named"),
    [
        ('      "tgqr.evt.>",\n', "", "may not publish tgqr.evt.> (event appends)"),
        ('"$KV.tgqr_sessions.>", "$KV', '"$KV', "may not publish $KV.tgqr_sessions.>"),
        ('"tgqr.cmd.>", "tgqr.query.>", "tgqr.session.>", "tgqr.sim.>", "$SRV.>",\n      "tgqr.evt',
         '"tgqr.query.>", "tgqr.session.>", "tgqr.sim.>", "$SRV.>",\n      "tgqr.evt',
         "may not subscribe to tgqr.cmd.>"),
        ('"$JS.API.STREAM.INFO.TGQR_EVENTS", "$JS.API.STREAM.CREATE', '"$JS.API.STREAM.CREATE',
         "may not publish $JS.API.STREAM.INFO.TGQR_EVENTS"),
        ('"$JS.API.STREAM.CREATE.TGQR_EVENTS",\n', "\n",
         "may not publish $JS.API.STREAM.CREATE.TGQR_EVENTS (creating the event stream)"),
        ('"$JS.API.CONSUMER.CREATE.KV_tgqr_sessions", "$JS', '"$JS',
         "may not publish $JS.API.CONSUMER.CREATE.KV_tgqr_sessions (following bucket"),
    ],
)  # fmt: skip
async def test_the_service_names_a_missing_permission(
    tmp_path: Path, grant: str, rest: str, named: str
) -> None:
    """The service's user lacks one grant: run_service fails at once, naming it."""
    text = REPO_CONF.read_text()
    assert text.count(grant) == 1
    conf = tmp_path / "narrow.conf"
    conf.write_text(text.replace(grant, rest))
    data = tmp_path / "data"
    server = start_nats_server(tmp_path / "nats", conf_path=conf, users=ensure_credentials(data))
    try:
        with anyio.fail_after(10), pytest.raises(PermissionMissingError) as caught:
            await run_service(_config(data, server.url))  # fails before it serves
        assert named in str(caught.value)
        assert "role service (user service from" in str(caught.value)
    finally:
        server.stop()


async def test_an_open_server_works_with_one_warning(
    nats_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No auth on the external server: the service starts and warns once that any client can
    act as any role."""
    caplog.set_level(logging.WARNING, "tgqr.service")
    async with anyio.create_task_group() as tg:
        running: RunningService = await tg.start(
            run_service, _config(tmp_path / "data", nats_server.url)
        )
        assert running.supervisor is not None
        tg.cancel_scope.cancel()
    warnings = [r.getMessage() for r in caplog.records if "no authentication" in r.getMessage()]
    assert len(warnings) == 1
    assert "any client on it can act as any role" in warnings[0]


def test_the_embedded_server_inherits_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tgqr's keys in the environment do not reach nats-server: its /proc/PID/environ holds
    only what a process needs (before: the whole environment, TGQR_CHAIN_KEY included)."""
    secrets = {
        "TGQR_CHAIN_KEY": "chain-secret",
        "TGQR_LINK_KEY": "link-secret",
        "TGQR_VAULT_KEYS": "vault-secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    server = start_nats_server(tmp_path / "nats")
    try:
        environ = Path(f"/proc/{server.process.pid}/environ").read_bytes()
    finally:
        server.stop()
    names = {item.split(b"=", 1)[0].decode() for item in environ.split(b"\0") if item}
    assert names <= {"PATH", "LANG", "LC_ALL", "TZ", "TMPDIR"}
    for value in secrets.values():
        assert value.encode() not in environ
