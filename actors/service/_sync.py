"""JetStream's sync interval for the embedded server (``TGQR_NATS_SYNC``), without imports of
the rest of the service (the config and the server module both need it)."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["DEFAULT_SYNC", "parse_sync"]

DEFAULT_SYNC: Final = "always"
"""JetStream fsyncs every write before acknowledging it (``TGQR_NATS_SYNC``)."""
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")


def parse_sync(text: str) -> str:
    """``always`` or a duration in nats-server's notation (``2m``, ``30s``, ``1m30s``,
    ``500ms``): how often JetStream syncs its files to disk.

    Raises:
        ValueError: anything else (the message says what is accepted).
    """
    value = text.strip().lower()
    if value == DEFAULT_SYNC or _DURATION.fullmatch(value):
        return value
    raise ValueError(
        f"TGQR_NATS_SYNC must be 'always' or a duration such as 2m or 30s (it is {text[:40]!r})"
    )
