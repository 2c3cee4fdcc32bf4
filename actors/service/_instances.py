"""Settings of several instances: the partitions, the ownership TTL and this instance's name
(README, "Running more than one")."""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Mapping
from typing import Final

from actors.ownership import OwnershipSettings

__all__ = ["instance_id", "ownership_from_env"]

_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,40}")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]+")


class _ConfigError(ValueError):
    pass


def ownership_from_env(env: Mapping[str, str]) -> tuple[OwnershipSettings, str | None]:
    """``TGQR_PARTITIONS`` (default 32), ``TGQR_OWNERSHIP_TTL_SECONDS`` (default 3: a dead
    instance's tenants move after at most this), ``TGQR_INSTANCE`` (a name for this instance;
    default the host name).

    Raises:
        ValueError: a setting is malformed (the message names it).
    """
    try:
        partitions = int(env.get("TGQR_PARTITIONS") or 32)
        ttl = int(env.get("TGQR_OWNERSHIP_TTL_SECONDS") or 3)
    except ValueError:
        raise _ConfigError(
            "TGQR_PARTITIONS and TGQR_OWNERSHIP_TTL_SECONDS must be integers"
        ) from None
    try:
        settings = OwnershipSettings(partitions=partitions, ttl_s=ttl, margin_s=min(0.5, ttl / 4))
    except ValueError as exc:
        raise _ConfigError(f"TGQR_PARTITIONS / TGQR_OWNERSHIP_TTL_SECONDS: {exc}") from None
    name = (env.get("TGQR_INSTANCE") or "").strip() or None
    if name is not None and _NAME.fullmatch(name) is None:
        raise _ConfigError("TGQR_INSTANCE must be 1-40 characters from A-Z a-z 0-9 _ -")
    return settings, name


def instance_id(name: str | None) -> str:
    """This process's id among the instances: the name (default: the host name) and a random
    suffix, so a restarted instance is a new member and never mistakes an old lease for its
    own."""
    base = name or _UNSAFE.sub("-", socket.gethostname()).strip("-")[:40] or "tgqr"
    return f"{base}-{secrets.token_hex(3)}"
