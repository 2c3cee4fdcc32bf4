"""The automatic backups' settings, from the environment: off unless an interval is set."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["BackupSettings", "backup_settings"]

_URL = re.compile(
    r"s3://[a-z0-9][a-z0-9.-]{1,62}(/\S*)?|nats-object://[A-Za-z0-9_-]+|(?!\w+://)\S.*"
)


@dataclass(frozen=True)
class BackupSettings:
    """``to``: where (``TGQR_BACKUP_TO``: ``s3://BUCKET/PREFIX``, ``nats-object://BUCKET`` or a
    directory; S3 credentials come from ``AWS_*``, never from here); ``every_s``: seconds
    between backups (``TGQR_BACKUP_EVERY_S``, None: off, the default); ``keep``: how many to
    keep, with those they build on (``TGQR_BACKUP_KEEP``, default 7)."""

    to: str | None = field(default=None)
    every_s: int | None = None
    keep: int = 7

    @property
    def enabled(self) -> bool:
        return self.every_s is not None and self.to is not None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None


def backup_settings(env: Mapping[str, str]) -> BackupSettings:
    """Raises: ValueError: a setting is malformed, or an interval is set without a target."""
    to = env.get("TGQR_BACKUP_TO", "").strip() or None
    if to is not None and not _URL.fullmatch(to):
        raise ValueError(
            "TGQR_BACKUP_TO must be s3://BUCKET/PREFIX, nats-object://BUCKET or a directory"
        )
    keep = _int(env, "TGQR_BACKUP_KEEP", 7)
    if keep < 1:
        raise ValueError("TGQR_BACKUP_KEEP must be at least 1")
    every = _int(env, "TGQR_BACKUP_EVERY_S", 0)
    if not every:
        return BackupSettings(to, None, keep)
    if every < 60:
        raise ValueError("TGQR_BACKUP_EVERY_S must be at least 60 (seconds)")
    if to is None:
        raise ValueError("TGQR_BACKUP_EVERY_S needs TGQR_BACKUP_TO (where the backups go)")
    return BackupSettings(to, every, keep)
