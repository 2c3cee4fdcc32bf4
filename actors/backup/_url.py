"""Backup URLs: ``s3://BUCKET/PREFIX`` (:mod:`._s3`), ``nats-object://BUCKET``
(:mod:`._objstore`), or a directory (``file:///path`` or a plain path)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import BackupTargetError
from ._targets import DirectoryTarget, Target

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["open_target", "target_kind"]


def target_kind(url: str) -> str:
    """``s3``, ``nats-object`` or ``directory``."""
    if url.startswith("s3://"):
        return "s3"
    if url.startswith("nats-object://"):
        return "nats-object"
    return "directory"


def open_target(
    url: str, *, js: JetStreamContext | None = None, env: Mapping[str, str] = os.environ
) -> Target:
    """The target ``url`` names. ``js``: the JetStream context for ``nats-object://``.

    Raises:
        BackupTargetError: the URL is malformed, or names the object store without ``js``.
    """
    kind = target_kind(url)
    if kind == "s3":
        from ._s3 import S3Target

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise BackupTargetError("an S3 URL looks like s3://BUCKET/PREFIX")
        return S3Target(bucket, prefix.strip("/"), env=env)
    if kind == "nats-object":
        from ._objstore import NatsObjectTarget

        bucket = url.removeprefix("nats-object://").strip("/")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", bucket):
            raise BackupTargetError("a JetStream object store URL looks like nats-object://BUCKET")
        if js is None:
            raise BackupTargetError(f"{url} needs a NATS connection")
        return NatsObjectTarget(js, bucket)
    path = url.removeprefix("file://")
    if not path:
        raise BackupTargetError("no backup location given")
    return DirectoryTarget(Path(path).expanduser())
