"""Session leases in the projection, in SQL: who held which tenant's session when. Pure.

``session_leases`` has one row per (tenant, lease_id), folded from the batch like the tables of
:mod:`projections.sql` (every column merges associatively, so any batching gives the same rows):

- ``holder``, ``fence``, ``granted_at``: of the lease's first ``SessionLeased``;
- ``expires_at``: of its last ``SessionLeased``: the expiry it was granted with;
- ``grants``: its ``SessionLeased`` events (1; logs written before renewals left the log repeat
  the event for each renewal);
- ``ended_at``, ``end_reason``: of the first ``SessionReleased`` naming it (later ones change
  nothing).

A renewal writes no event (the tenant's actor keeps the later expiry in the ``tgqr_leases``
bucket), so the projections, which see only the log, show the *granted* expiry: a lease may run
past ``expires_at`` here while its holder renews it. When it ended, and why, is always in the
log (``ended_at``, ``end_reason``). The live expiry is what the holder's renew replies carry,
and what a ``leased`` refusal names.

The status view's ``lease_holder``/``lease_expires_at`` come from ``tenant_status`` (see
:mod:`projections.sql`), with the same meaning; the metrics here count, over a window:
``leases`` granted, ``leases_expired`` (not renewed in time) and ``leases_revoked`` (the holder
said the session is dead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

__all__ = [
    "LEASE_METRIC_KEYS",
    "LEASE_TABLE",
    "lease_figures",
    "lease_fold_sql",
    "lease_metrics_sql",
    "lease_schema_sql",
]

LEASE_TABLE: Final = "session_leases"
LEASE_METRIC_KEYS: Final = ("leases", "leases_expired", "leases_revoked")


def lease_schema_sql(sfx: str) -> str:
    """The statement creating generation ``sfx`` of the table."""
    return f"""CREATE TABLE IF NOT EXISTS {LEASE_TABLE}{sfx} (
        tenant VARCHAR NOT NULL, lease_id VARCHAR NOT NULL, holder VARCHAR, fence BIGINT,
        granted_at TIMESTAMP, expires_at TIMESTAMP, grants BIGINT NOT NULL,
        ended_at TIMESTAMP, end_reason VARCHAR, PRIMARY KEY (tenant, lease_id))"""


def lease_fold_sql(sfx: str) -> str:
    """The statement merging ``batch{sfx}`` (columns ``holder``, ``lease_id``, ``fence``,
    ``expires_at``, ``reason``) into the table."""
    return f"""
        INSERT INTO {LEASE_TABLE}{sfx}
        SELECT tenant, lease_id, first.holder, first.fence, first.ts, last_expiry, grants,
            ending.ts, ending.reason
        FROM (
            SELECT tenant, lease_id,
                arg_min({{'holder': holder, 'fence': fence, 'ts': ts}}, seq)
                    FILTER (WHERE type = 'SessionLeased') AS first,
                arg_max(expires_at, seq) FILTER (WHERE type = 'SessionLeased') AS last_expiry,
                count(*) FILTER (WHERE type = 'SessionLeased') AS grants,
                arg_min({{'ts': ts, 'reason': reason}}, seq)
                    FILTER (WHERE type = 'SessionReleased') AS ending
            FROM batch{sfx}
            WHERE type IN ('SessionLeased', 'SessionReleased') AND lease_id IS NOT NULL
            GROUP BY tenant, lease_id)
        ON CONFLICT (tenant, lease_id) DO UPDATE SET
            holder = CASE WHEN granted_at IS NULL THEN excluded.holder ELSE holder END,
            fence = CASE WHEN granted_at IS NULL THEN excluded.fence ELSE fence END,
            granted_at = coalesce(granted_at, excluded.granted_at),
            expires_at = coalesce(excluded.expires_at, expires_at),
            grants = grants + excluded.grants,
            end_reason = CASE WHEN ended_at IS NULL THEN excluded.end_reason ELSE end_reason END,
            ended_at = coalesce(ended_at, excluded.ended_at)
    """  # noqa: S608 - the table name is ours


def lease_metrics_sql(table: str = LEASE_TABLE) -> str:
    """One row for all tenants (``is_global``) and one per tenant with leases in the window:
    ``(tenant, is_global, leases, leases_expired, leases_revoked)``; params: from, to."""
    return f"""
        WITH w AS (SELECT ?::TIMESTAMP AS lo, ?::TIMESTAMP AS hi)
        SELECT tenant, GROUPING(tenant) = 1 AS is_global,
            count(*) FILTER (WHERE granted_at BETWEEN w.lo AND w.hi) AS leases,
            count(*) FILTER (WHERE end_reason = 'expired' AND ended_at BETWEEN w.lo AND w.hi)
                AS leases_expired,
            count(*) FILTER (WHERE end_reason = 'revoked' AND ended_at BETWEEN w.lo AND w.hi)
                AS leases_revoked
        FROM {table}, w
        WHERE granted_at BETWEEN w.lo AND w.hi OR ended_at BETWEEN w.lo AND w.hi
        GROUP BY GROUPING SETS ((), (tenant))
    """  # noqa: S608 - the table name is ours, values are parameters


def lease_figures(row: Sequence[Any] | None) -> dict[str, int]:
    """The lease figures of one row of :func:`lease_metrics_sql` (zeros for None)."""
    if row is None:
        return dict.fromkeys(LEASE_METRIC_KEYS, 0)
    return dict(zip(LEASE_METRIC_KEYS, (int(v or 0) for v in row[2:5]), strict=True))
