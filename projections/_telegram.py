"""The service's own chains in the projection: never a tenant, and Telegram's DCs for health.

Aggregates whose id starts with ``_`` (``_telegram``) are the service's (see
:func:`events.is_service_chain`): their events are checked like any (MAC, chain link) but kept
out of the tenant tables (``tenant_status``, ``login_attempts``, ``event_counts``). The
``_telegram`` chain's ``TelegramDown`` / ``TelegramUp`` fold into ``telegram_dcs``, one row per
DC with its last word: ``down`` (since ``since``, after ``failures``, ``retry_after_s``) or
``up`` (after ``down_s``). ``tgqr.query.health`` lists the DCs down. Pure module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import msgspec

__all__ = [
    "TELEGRAM_DOWN_SQL",
    "TELEGRAM_TABLE",
    "telegram_health",
    "telegram_rows",
    "telegram_schema_sql",
]

TELEGRAM_TABLE: Final = "telegram_dcs"
TELEGRAM_DOWN_SQL: Final = (
    f"SELECT dc, since, failures, retry_after_s FROM {TELEGRAM_TABLE}"  # noqa: S608
    " WHERE state = 'down' ORDER BY dc"
)


def telegram_schema_sql(sfx: str) -> str:
    """The ``telegram_dcs`` table of one generation."""
    return f"""CREATE TABLE IF NOT EXISTS {TELEGRAM_TABLE}{sfx} (
        dc BIGINT PRIMARY KEY, state VARCHAR NOT NULL, since TIMESTAMP NOT NULL,
        failures BIGINT NOT NULL, retry_after_s DOUBLE NOT NULL, down_s DOUBLE NOT NULL,
        seq BIGINT NOT NULL)"""


class _DcEvent(msgspec.Struct):
    type: str
    at: datetime
    dc: int = 0
    failures: int = 0
    retry_after_s: float = 0.0
    down_s: float = 0.0


_decoder: Final = msgspec.json.Decoder(_DcEvent)


def telegram_rows(items: Sequence[tuple[int, bytes]]) -> list[tuple[Any, ...]]:
    """``telegram_dcs`` rows (upserts) from the service chains' ``(seq, doc)`` of one batch,
    in stream order: each DC's last word in the batch."""
    rows: dict[int, tuple[Any, ...]] = {}
    for seq, doc in items:
        event = _decoder.decode(doc)
        if event.type not in {"TelegramDown", "TelegramUp"}:
            continue
        state = "down" if event.type == "TelegramDown" else "up"
        since = event.at.replace(tzinfo=None) if event.at.tzinfo else event.at
        rows[event.dc] = (
            event.dc,
            state,
            since,
            event.failures,
            event.retry_after_s,
            event.down_s,
            seq,
        )
    return list(rows.values())


def telegram_health(rows: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """The ``telegram`` part of the health reply from ``(dc, since, failures,
    retry_after_s)`` rows of the DCs down: ``{"dcs_down": [{"dc", "since", "failures",
    "retry_after_s"}]}`` (``since``: ISO 8601 UTC)."""
    return {
        "dcs_down": [
            {
                "dc": int(dc),
                "since": since.isoformat() + "Z",
                "failures": int(failures),
                "retry_after_s": float(retry_after_s),
            }
            for dc, since, failures, retry_after_s in rows
        ]
    }
