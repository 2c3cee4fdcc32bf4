"""The metrics view: the SQL over ``login_attempts`` and the reply it is shaped into.

Pure module (the SQL text is executed by :mod:`projections.store`). Definitions, over the
attempts whose ``started_at`` lies in ``[now - window_s, now]``:

- ``started``: such attempts; ``authorized``/``expired``/``failed``/``cancelled``: those that
  ended so (``LoginFailed(crashed)`` is a failure); ``ended`` is their sum (live ones excluded).
- ``flood_waits``, ``restarts``: ``FloodWaited`` and ``ActorRestarted`` events of those attempts.
- ``success_rate`` = authorized / ended, ``qr_expiry_rate`` = expired / ended,
  ``flood_wait_rate`` = attempts with at least one flood wait / started; None when the
  denominator is 0.
- ``time_to_*_p50_s``/``p95_s``: continuous quantiles (DuckDB ``quantile_cont``) of the
  seconds from start to the first scan and to authorization; None without samples.

- ``leases``, ``leases_expired``, ``leases_revoked``: session leases granted in the window, and
  those that ended in it by expiry or revocation (:mod:`projections.leases`).

``global`` always covers every tenant; a ``tenant`` filter narrows only ``tenants``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from .leases import LEASE_METRIC_KEYS, lease_figures

__all__ = ["DEFAULT_WINDOW_S", "METRIC_KEYS", "empty_figures", "metrics_sql", "shape_metrics"]

DEFAULT_WINDOW_S: Final = 3600

METRIC_KEYS: Final = (
    "started",
    "authorized",
    "expired",
    "failed",
    "cancelled",
    "flood_waits",
    "restarts",
    "success_rate",
    "qr_expiry_rate",
    "flood_wait_rate",
    "time_to_scan_p50_s",
    "time_to_scan_p95_s",
    "time_to_authorize_p50_s",
    "time_to_authorize_p95_s",
    *LEASE_METRIC_KEYS,
)


def metrics_sql(table: str) -> str:
    """One row for all tenants (``is_global`` true) and one per tenant; params: from, to."""
    return f"""
        SELECT
            tenant,
            GROUPING(tenant) = 1 AS is_global,
            count(*) AS started,
            count(*) FILTER (WHERE outcome = 'authorized') AS authorized,
            count(*) FILTER (WHERE outcome = 'expired') AS expired,
            count(*) FILTER (WHERE outcome = 'failed') AS failed,
            count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
            coalesce(sum(flood_waits), 0) AS flood_waits,
            coalesce(sum(restarts), 0) AS restarts,
            count(*) FILTER (WHERE flood_waits > 0) AS flood_waited,
            quantile_cont(time_to_scan_s, 0.5) AS scan_p50,
            quantile_cont(time_to_scan_s, 0.95) AS scan_p95,
            quantile_cont(time_to_authorize_s, 0.5) AS auth_p50,
            quantile_cont(time_to_authorize_s, 0.95) AS auth_p95
        FROM {table}
        WHERE started_at >= ? AND started_at <= ?
        GROUP BY GROUPING SETS ((), (tenant))
    """  # noqa: S608 - the table name is ours, values are parameters


def window_bounds(now: datetime, window_s: int) -> tuple[datetime, datetime]:
    """The inclusive ``started_at`` range of a window ending at ``now``."""
    return now - timedelta(seconds=window_s), now


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _figures(row: Sequence[Any]) -> dict[str, Any]:
    (
        _,
        _,
        started,
        authorized,
        expired,
        failed,
        cancelled,
        flood_waits,
        restarts,
        flood_waited,
        scan_p50,
        scan_p95,
        auth_p50,
        auth_p95,
    ) = row
    ended = authorized + expired + failed + cancelled
    return {
        "started": int(started),
        "authorized": int(authorized),
        "expired": int(expired),
        "failed": int(failed),
        "cancelled": int(cancelled),
        "flood_waits": int(flood_waits),
        "restarts": int(restarts),
        "success_rate": _rate(authorized, ended),
        "qr_expiry_rate": _rate(expired, ended),
        "flood_wait_rate": _rate(flood_waited, started),
        "time_to_scan_p50_s": scan_p50,
        "time_to_scan_p95_s": scan_p95,
        "time_to_authorize_p50_s": auth_p50,
        "time_to_authorize_p95_s": auth_p95,
        **lease_figures(None),
    }


def empty_figures() -> dict[str, Any]:
    """The figures of a window without attempts."""
    return _figures((None, True, 0, 0, 0, 0, 0, 0, 0, 0, None, None, None, None))


def shape_metrics(
    rows: Sequence[Sequence[Any]],
    *,
    window_s: int,
    tenant: str | None = None,
    lease_rows: Sequence[Sequence[Any]] = (),
) -> dict[str, Any]:
    """The ``tgqr.query.metrics`` reply from the rows of :func:`metrics_sql` (and of
    :func:`projections.leases.lease_metrics_sql`)."""
    global_figures = empty_figures()
    tenants: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row[1]:
            global_figures = _figures(row)
        elif tenant is None or row[0] == tenant:
            tenants[row[0]] = _figures(row)
    for row in lease_rows:
        if row[1]:
            global_figures |= lease_figures(row)
        elif tenant is None or row[0] == tenant:
            tenants.setdefault(row[0], empty_figures()).update(lease_figures(row))
    if tenant is not None and tenant not in tenants:
        tenants[tenant] = empty_figures()
    return {
        "ok": True,
        "window_s": window_s,
        "global": global_figures,
        "tenants": dict(sorted(tenants.items())),
    }
