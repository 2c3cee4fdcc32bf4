"""Service configuration from the environment and the command line, and the chain key.

Every setting has an embedded default, so ``tgqr up`` and ``make demo`` run with nothing set.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from actors.backup import BackupSettings, backup_settings
from actors.gateway.page import DEFAULT_HTTP, HttpAddressError, parse_http
from actors.keyfiles import create_key_file
from actors.login import Policy
from actors.ownership import OwnershipSettings
from actors.telegram import Device, Proxy, ProxyUrlError
from events import ChainKey, StoragePolicy

from ._instances import ownership_from_env
from ._sync import DEFAULT_SYNC, parse_sync

__all__ = [
    "CHAIN_KEY_ENV",
    "CHAIN_KEY_FILE",
    "DEFAULT_METRICS",
    "ChainKeyMissingError",
    "ConfigError",
    "ServiceConfig",
    "load_chain_key",
]

CHAIN_KEY_ENV: Final = "TGQR_CHAIN_KEY"
MAX_REPLICAS: Final = 5
"""JetStream keeps at most 5 copies of a stream."""
CHAIN_KEY_FILE: Final = "chain.key"
DEFAULT_METRICS: Final = "127.0.0.1:9464"
"""Where ``tgqr up`` serves ``/metrics``, ``/healthz`` and ``/readyz`` unless told otherwise."""


class ConfigError(ValueError):
    """Raised for a setting that cannot be used (the message names the setting, not secrets)."""


class ChainKeyMissingError(ConfigError):
    """Raised by :func:`load_chain_key` with ``create=False`` when ``TGQR_CHAIN_KEY`` is unset
    and the key file does not exist; the message names both places."""


@dataclass(frozen=True)
class ServiceConfig:
    """What ``tgqr up`` runs with; ``nats_urls=None`` embeds a nats-server under ``data_dir``."""

    data_dir: Path = Path("var")
    # May carry user:password@ (shown only through redact_url): never in a repr.
    nats_urls: tuple[str, ...] | None = field(default=None, repr=False)
    nats_creds: Path | None = None
    """A NATS ``.creds`` file for an external server (``--creds``, ``TGQR_NATS_CREDS``)."""
    nats_nkey: Path | None = None
    """An nkey seed file for an external server (``--nkey``, ``TGQR_NATS_NKEY``)."""
    replicas: int = 1
    policy: Policy = field(default_factory=Policy)
    api_id: int | None = None
    api_hash: str | None = field(default=None, repr=False)  # a credential: never in a repr
    throttle_s: tuple[float, float] = (0.2, 0.5)
    sim_token_ttl_s: float = 30.0
    projector: bool = True
    http: str | None = DEFAULT_HTTP
    """The end user's page: ``HOST:PORT`` to listen on (port 0: any free one), None: none."""
    public_url: str | None = None
    """The base of the page's links (``TGQR_PUBLIC_URL``); None: ``http://`` + the address."""
    storage: StoragePolicy = field(default_factory=StoragePolicy)
    """The limits of the log and the buckets (``TGQR_<STORE>_MAX_*``, see events.storage)."""
    device: Device = field(default_factory=Device)
    proxy: Proxy | None = field(default=None, repr=False)
    """The proxy of tenants that set none of their own (``TGQR_PROXY``); it holds credentials."""
    """How every tenant's Telegram client names itself unless its ``start`` says otherwise
    (``TGQR_DEVICE_MODEL``, ``_SYSTEM``, ``_APP_VERSION``, ``_LANG``, ``_SYSTEM_LANG``)."""
    metrics: str | None = None
    """``HOST:PORT`` of ``/metrics``, ``/healthz``, ``/readyz`` (``TGQR_METRICS``); None: none."""
    ownership: OwnershipSettings = field(default_factory=OwnershipSettings)
    """Partitions and the ownership TTL (``TGQR_PARTITIONS``, ``TGQR_OWNERSHIP_TTL_SECONDS``)."""
    instance: str | None = None
    """This instance's name among several (``TGQR_INSTANCE``; default the host name)."""
    nats_sync: str = DEFAULT_SYNC
    """The embedded server's JetStream ``sync_interval`` (``TGQR_NATS_SYNC``): ``always``
    (fsync before each ack) or a duration such as ``2m`` (nats-server's default)."""
    sim_shared: bool = False
    """Simulator mode uses the shared simulator (``--sim shared``, ``TGQR_SIM=shared``) found on
    ``tgqr.sim.info`` instead of starting one of its own."""
    backups: BackupSettings = field(default_factory=BackupSettings)
    """Automatic backups (``TGQR_BACKUP_TO``, ``TGQR_BACKUP_EVERY_S``, ``TGQR_BACKUP_KEEP``):
    off unless an interval is set."""

    @property
    def simulated(self) -> bool:
        """No Telegram credentials: the built-in simulator plays Telegram."""
        return self.api_id is None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] = os.environ,
        *,
        data_dir: Path | None = None,
        nats: str | None = None,
        creds: str | None = None,
        nkey: str | None = None,
        replicas: int = 1,
        http: str | None = None,
        metrics: str | None = None,
        sim: str | None = None,
    ) -> ServiceConfig:
        """Read ``TGQR_*`` settings (see README, "Configuration"); ``http`` (``--http``)
        overrides ``TGQR_HTTP``, and ``off`` serves no page; ``metrics`` (``--metrics``)
        overrides ``TGQR_METRICS`` (default 127.0.0.1:9464), ``off`` for none; ``sim``
        (``--sim``) overrides ``TGQR_SIM`` (``shared``: use ``tgqr sim serve``'s simulator).

        Raises:
            ConfigError: a setting is malformed, only one of the API id and hash is set, or
                ``replicas`` is outside 1..5 or above 1 without ``nats`` (the embedded
                server is one node).
        """
        api_id_text, api_hash = env.get("TGQR_API_ID"), env.get("TGQR_API_HASH")
        if bool(api_id_text) != bool(api_hash):
            raise ConfigError("set both TGQR_API_ID and TGQR_API_HASH, or neither")
        api_id = _int(env, "TGQR_API_ID") if api_id_text else None
        ttl = _int(env, "TGQR_QR_TTL_SECONDS", 600)
        if not 1 <= ttl <= 600:
            raise ConfigError("TGQR_QR_TTL_SECONDS must be within 1..600")
        flood_max = _int(env, "TGQR_FLOOD_MAX_WAIT_SECONDS", 60)
        validate_s = _int(env, "TGQR_VALIDATE_SECONDS", 900)
        if validate_s < 1:
            raise ConfigError("TGQR_VALIDATE_SECONDS must be at least 1")
        throttle = env.get("TGQR_THROTTLE_MS", "200-500")
        try:
            low, _, high = throttle.partition("-")
            throttle_s = (int(low) / 1000, int(high or low) / 1000)
        except ValueError as exc:
            raise ConfigError("TGQR_THROTTLE_MS must look like 200-500") from exc
        if not 0 <= throttle_s[0] <= throttle_s[1]:
            raise ConfigError("TGQR_THROTTLE_MS must be an increasing range")
        urls = tuple(u.strip() for u in nats.split(",") if u.strip()) if nats else None
        _check_replicas(replicas, external=bool(urls))
        try:
            storage = StoragePolicy.from_env(env)
            ownership, instance = ownership_from_env(env)
            nats_sync = parse_sync(env.get("TGQR_NATS_SYNC", DEFAULT_SYNC))
            backups = backup_settings(env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            data_dir=data_dir or Path(env.get("TGQR_DATA", "var")),
            nats_urls=urls or None,
            nats_creds=_path(creds or env.get("TGQR_NATS_CREDS")),
            nats_nkey=_path(nkey or env.get("TGQR_NATS_NKEY")),
            replicas=replicas,
            policy=Policy(
                qr_ttl_s=ttl,
                flood_max_wait_s=flood_max,
                validate_every_s=float(validate_s),
            ),
            api_id=api_id,
            api_hash=api_hash or None,
            throttle_s=throttle_s,
            sim_token_ttl_s=float(_int(env, "TGQR_SIM_TOKEN_TTL_SECONDS", 30)),
            http=_http(http or env.get("TGQR_HTTP") or DEFAULT_HTTP),
            public_url=_public_url(env.get("TGQR_PUBLIC_URL", "")),
            storage=storage,
            device=_device(env),
            proxy=_proxy(env.get("TGQR_PROXY", "")),
            metrics=_metrics(metrics or env.get("TGQR_METRICS") or DEFAULT_METRICS),
            sim_shared=_sim_shared(sim or env.get("TGQR_SIM", "")),
            ownership=ownership,
            instance=instance,
            nats_sync=nats_sync,
            backups=backups,
        )


def _sim_shared(mode: str) -> bool:
    if mode.strip().lower() not in {"", "own", "shared"}:
        raise ConfigError(f"--sim / TGQR_SIM must be 'shared' or 'own' (it is {mode[:40]!r})")
    return mode.strip().lower() == "shared"


def _check_replicas(replicas: int, *, external: bool) -> None:
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ConfigError(f"--replicas must be an integer from 1 to {MAX_REPLICAS}")
    if replicas > 1 and not external:
        raise ConfigError(
            f"--replicas {replicas} needs a NATS cluster: the embedded nats-server is one node "
            "(run a cluster and pass --nats URL,URL,URL; see README)"
        )


_DEVICE_ENV: Final = {
    "model": "TGQR_DEVICE_MODEL",
    "system": "TGQR_DEVICE_SYSTEM",
    "app_version": "TGQR_DEVICE_APP_VERSION",
    "lang": "TGQR_DEVICE_LANG",
    "system_lang": "TGQR_DEVICE_SYSTEM_LANG",
}


def _proxy(url: str) -> Proxy | None:
    if not url.strip():
        return None
    try:
        return Proxy.parse(url)
    except ProxyUrlError as exc:
        raise ConfigError(f"TGQR_PROXY: {exc}") from None


def _device(env: Mapping[str, str]) -> Device:
    given: dict[str, str] = {}
    for name, variable in _DEVICE_ENV.items():
        value = env.get(variable, "").strip()
        if not value:
            continue
        if len(value) > 64 or not value.isprintable():
            raise ConfigError(f"{variable} must be at most 64 printable characters")
        given[name] = value
    return Device(**given)


def _http(address: str) -> str | None:
    if address.strip().lower() == "off":
        return None
    try:
        parse_http(address)
    except HttpAddressError as exc:
        raise ConfigError(f"--http / TGQR_HTTP: {exc}") from None
    return address.strip()


def _metrics(address: str) -> str | None:
    if address.strip().lower() == "off":
        return None
    try:
        parse_http(address)
    except HttpAddressError as exc:
        raise ConfigError(f"--metrics / TGQR_METRICS: {exc}") from None
    return address.strip()


def _public_url(url: str) -> str | None:
    url = url.strip().rstrip("/")
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    if scheme not in {"http", "https"} or not sep or not rest or "/" in rest:
        raise ConfigError("TGQR_PUBLIC_URL must look like https://login.example.com (no path)")
    return url


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ConfigError(f"{name} is required")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None


def load_chain_key(
    data_dir: Path, env: Mapping[str, str] = os.environ, *, create: bool = True
) -> ChainKey:
    """The hash-chain key: ``TGQR_CHAIN_KEY`` (hex), else ``data_dir/chain.key``.

    ``create``: make the file (mode 0600, a fresh key) when it is missing. Only the service
    does (``tgqr up``, the demo); every other reader passes ``create=False``, since a new key
    matches no existing log. Blocks on the file system.

    Raises:
        ChainKeyMissingError: ``create`` is false and there is neither variable nor file.
        ConfigError: the variable is not hex of at least 16 bytes, or the file is unreadable.
    """
    raw = env.get(CHAIN_KEY_ENV)
    if raw:
        try:
            return ChainKey(bytes.fromhex(raw.strip()))
        except ValueError:
            raise ConfigError(f"{CHAIN_KEY_ENV} must be at least 32 hex digits") from None
    path = data_dir / CHAIN_KEY_FILE
    if not create and not path.exists():
        raise ChainKeyMissingError(
            f"no chain key: {CHAIN_KEY_ENV} is not set and {path} does not exist"
        )
    if not path.exists():
        create_key_file(path, secrets.token_hex(32).encode() + b"\n")
    try:
        return ChainKey(bytes.fromhex(path.read_text(encoding="utf-8").strip()))
    except (OSError, ValueError):
        raise ConfigError(f"cannot read the chain key file {path}") from None
