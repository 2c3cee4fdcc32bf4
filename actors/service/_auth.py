"""Roles on NATS and how each one authenticates (README, "Roles and credentials").

Four roles, each a user in ``nats.conf`` with deny-by-default permissions: ``service`` (tgqr
itself), ``app`` (the backend that uses tgqr), ``auditor`` (reads the log) and ``page`` (the
end user's page). For the
embedded server every role's password is made on first start in ``<data>/creds/<role>.json``
(mode 0600, in a 0700 directory); the server's config gets only bcrypt hashes of them. Against
an external server a role authenticates with a NATS ``.creds`` file, an nkey seed file, or
``user:password@`` in the URL (:func:`resolve_auth`).

Each role receives its replies under its own inbox prefix, so that no role can subscribe to
another's replies (``nats.conf`` grants each only its own).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args
from urllib.parse import unquote, urlsplit

import bcrypt

from ._config import ConfigError

__all__ = [
    "CREDS_DIR",
    "INBOX_PREFIX",
    "ROLES",
    "NatsAuth",
    "Role",
    "RoleCredentials",
    "ensure_credentials",
    "password_definitions",
    "read_credentials",
    "redact_url",
    "resolve_auth",
]

Role = Literal["service", "app", "auditor", "page"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
CREDS_DIR: Final = "creds"
INBOX_PREFIX: Final[Mapping[Role, str]] = {
    "service": "_INBOX_service",
    "app": "_INBOX",
    "auditor": "_INBOX_auditor",
    "page": "_INBOX_page",
}
CREDS_ENV: Final = "TGQR_NATS_CREDS"
NKEY_ENV: Final = "TGQR_NATS_NKEY"
# The bcrypt cost guards guessable passwords; these are 256 random bits, which no cost factor
# makes stronger, while the server pays the cost on every connection (cost 10: ~60 ms each).
_BCRYPT_ROUNDS: Final = 4
_USERINFO: Final = re.compile(r"(^|//|,)([^:/@,]*)(:[^@/,]*)?@")


@dataclass(frozen=True)
class RoleCredentials:
    """One role's user and password for the embedded server (the password is never shown)."""

    role: Role
    user: str
    password: str = field(repr=False)
    path: Path | None = None


def _creds_path(data_dir: Path, role: Role) -> Path:
    return data_dir / CREDS_DIR / f"{role}.json"


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` (mode 0600) unless it exists; never overwrites another process's file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def read_credentials(data_dir: Path, role: Role) -> RoleCredentials | None:
    """The role's credentials file under ``data_dir``, or None if there is none (never creates).

    Raises:
        ConfigError: the file exists but cannot be read or is malformed.
    """
    path = _creds_path(data_dir, role)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        raise ConfigError(f"cannot read the credentials file {path}") from None
    try:
        data = json.loads(raw)
        user, password = data["user"], data["password"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"malformed credentials file {path}") from None
    if not isinstance(user, str) or not isinstance(password, str):
        raise ConfigError(f"malformed credentials file {path}")
    return RoleCredentials(role, user, password, path)


def ensure_credentials(data_dir: Path) -> dict[Role, RoleCredentials]:
    """Every role's credentials under ``data_dir/creds``, made on first use (0600 files).

    Raises:
        ConfigError: a credentials file exists but cannot be read.
    """
    folder = data_dir / CREDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    found: dict[Role, RoleCredentials] = {}
    for role in ROLES:
        creds = read_credentials(data_dir, role)
        if creds is None:
            body = {"user": role, "password": secrets.token_urlsafe(32)}
            _write_new(_creds_path(data_dir, role), json.dumps(body) + "\n")
            creds = read_credentials(data_dir, role)
        if creds is None:  # pragma: no cover - just written
            raise ConfigError(f"cannot create the credentials of role {role}")
        found[role] = creds
    return found


def password_definitions(credentials: Mapping[Role, RoleCredentials]) -> str:
    """The ``TGQR_<ROLE>_PASSWORD`` variables ``nats.conf`` refers to, as bcrypt hashes."""
    lines = []
    for role, creds in credentials.items():
        digest = bcrypt.hashpw(creds.password.encode(), bcrypt.gensalt(_BCRYPT_ROUNDS, b"2a"))
        lines.append(f'TGQR_{role.upper()}_PASSWORD: "{digest.decode()}"')
    return "\n".join(lines) + "\n"


def redact_url(url: str) -> str:
    """``url`` (or a comma-separated list) with every password or token replaced by ``***``."""

    def hide(match: re.Match[str]) -> str:
        start, user, password = match.groups()
        return f"{start}{user}:***@" if password is not None else f"{start}***@"

    return _USERINFO.sub(hide, url)


@dataclass(frozen=True)
class NatsAuth:
    """How one role connects: at most one of credentials, a ``.creds`` file or an nkey seed
    (none: the URL's ``user:password@`` if it has one, else no authentication)."""

    role: Role
    credentials: RoleCredentials | None = None
    creds_file: Path | None = None
    nkey_file: Path | None = None
    url_user: str | None = None

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        options: dict[str, Any] = {"inbox_prefix": INBOX_PREFIX[self.role]}
        if self.credentials is not None:
            options |= {"user": self.credentials.user, "password": self.credentials.password}
        elif self.creds_file is not None:
            options["user_credentials"] = str(self.creds_file)
        elif self.nkey_file is not None:
            options["nkeys_seed"] = str(self.nkey_file)
        return options

    def describe(self) -> str:
        """Who connects, for one-line messages: never a secret."""
        if self.url_user is not None:
            return f"role {self.role} (user {self.url_user} from the URL)"
        if self.credentials is not None:
            where = f" from {self.credentials.path}" if self.credentials.path else ""
            return f"role {self.role} (user {self.credentials.user}{where})"
        if self.creds_file is not None:
            return f"role {self.role} (creds file {self.creds_file})"
        if self.nkey_file is not None:
            return f"role {self.role} (nkey seed {self.nkey_file})"
        return f"role {self.role} (no credentials)"


def _existing(path: str, what: str) -> Path:
    found = Path(path).expanduser()
    if not found.is_file():
        raise ConfigError(f"{what}: no such file {found}")
    return found


def resolve_auth(
    role: Role,
    *,
    data_dir: Path,
    urls: Sequence[str] = (),
    creds: str | None = None,
    nkey: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> NatsAuth:
    """How ``role`` authenticates: ``creds`` (``--creds``, else ``$TGQR_NATS_CREDS``), else
    ``nkey`` (``--nkey``, else ``$TGQR_NATS_NKEY``), else ``user:password@`` in one of
    ``urls``, else the role's file under ``data_dir`` (what the embedded server made), else
    nothing.

    Raises:
        ConfigError: both a creds file and an nkey are given, a named file does not exist, or
            the role's credentials file is unreadable.
    """
    creds = creds or env.get(CREDS_ENV) or None
    nkey = nkey or env.get(NKEY_ENV) or None
    if creds and nkey:
        raise ConfigError(f"give a creds file or an nkey seed, not both ({CREDS_ENV}/{NKEY_ENV})")
    if creds:
        return NatsAuth(role, creds_file=_existing(creds, "--creds"))
    if nkey:
        return NatsAuth(role, nkey_file=_existing(nkey, "--nkey"))
    for url in urls:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        if parts.username and parts.password is not None:
            # As options, for every server of the list (nats-py reads userinfo per URL).
            found = RoleCredentials(role, unquote(parts.username), unquote(parts.password))
            return NatsAuth(role, credentials=found, url_user=found.user)
        if parts.username:
            return NatsAuth(role, url_user=unquote(parts.username))  # a token
    return NatsAuth(role, credentials=read_credentials(data_dir, role))
