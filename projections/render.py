"""Plain-text tables of the query replies for ``tgqr status`` and ``tgqr metrics``. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["render_metrics", "render_status", "shorten"]

_STATUS_COLUMNS = (
    ("tenant", "TENANT"),
    ("state", "STATE"),
    ("attempt", "ATTEMPT"),
    ("user_id", "USER"),
    ("dc_id", "DC"),
    ("qr_expires_at", "QR EXPIRES"),
    ("updated_at", "UPDATED"),
    ("last_event", "LAST EVENT"),
    ("attempts", "ATTEMPTS"),
    ("flood_waits", "FLOODS"),
    ("restarts", "RESTARTS"),
    ("lease_holder", "LEASED TO"),
    ("lease_expires_at", "LEASE ENDS"),
    ("proxy", "PROXY"),
)

_METRIC_ROWS = (
    ("started", "started"),
    ("authorized", "authorized"),
    ("expired", "expired"),
    ("failed", "failed"),
    ("cancelled", "cancelled"),
    ("flood_waits", "flood waits"),
    ("restarts", "restarts"),
    ("success_rate", "success rate"),
    ("qr_expiry_rate", "QR expiry rate"),
    ("flood_wait_rate", "flood-wait rate"),
    ("time_to_scan_p50_s", "scan p50 (s)"),
    ("time_to_scan_p95_s", "scan p95 (s)"),
    ("time_to_authorize_p50_s", "authorize p50 (s)"),
    ("time_to_authorize_p95_s", "authorize p95 (s)"),
    ("leases", "session leases"),
    ("leases_expired", "leases expired"),
    ("leases_revoked", "leases revoked"),
)


def shorten(text: str, keep: int = 12) -> str:
    """``text`` cut to ``keep`` characters with an ellipsis when longer."""
    return text if len(text) <= keep else text[:keep] + "…"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str) and len(value) >= 20 and value[10:11] == "T":
        # An ISO timestamp from a JSON reply: show it like a datetime.
        return value[:19].replace("T", " ")
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def render_status(items: Sequence[Mapping[str, Any]]) -> str:
    """The ``items`` of a ``tgqr.query.status`` reply as a table (QR URLs left out)."""
    if not items:
        return "no tenants"
    rows = [[_cell(item.get(key)) for key, _ in _STATUS_COLUMNS] for item in items]
    return _table([title for _, title in _STATUS_COLUMNS], rows)


def _figure(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key.endswith("_rate"):
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def render_metrics(reply: Mapping[str, Any]) -> str:
    """A ``tgqr.query.metrics`` reply as a table: one row per figure, one column for all
    tenants and one per tenant."""
    tenants: Mapping[str, Mapping[str, Any]] = reply.get("tenants") or {}
    columns: list[tuple[str, Mapping[str, Any]]] = [("ALL", reply.get("global") or {})]
    columns += sorted(tenants.items())
    header = [f"window {reply.get('window_s', '?')} s"] + [name for name, _ in columns]
    rows = [
        [title] + [_figure(key, figures.get(key)) for _, figures in columns]
        for key, title in _METRIC_ROWS
    ]
    return _table(header, rows)
