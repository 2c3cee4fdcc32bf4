"""tgqr projections: the DuckDB projector, status and metrics views, queries, rebuild.

Depends on :mod:`events` only. Only :mod:`projections.store` imports duckdb and only
:mod:`projections.queries` imports nats; :mod:`projections.sql`, :mod:`projections.metrics`
and :mod:`projections.render` are pure.
"""

from __future__ import annotations

from ._gate import QUERY_LIMITS, QueryGate, QueryGateStatistics, QueryLimit
from .errors import ProjectionError, ProjectionStoreError
from .metrics import DEFAULT_WINDOW_S, METRIC_KEYS
from .projector import Projector, ProjectorStatistics, RebuildResult, open_projector
from .queries import QUERY_PREFIX, serve_queries
from .render import render_metrics, render_status
from .store import FaultHook, ProjectionStore

__all__ = [
    "DEFAULT_WINDOW_S",
    "METRIC_KEYS",
    "QUERY_LIMITS",
    "QUERY_PREFIX",
    "FaultHook",
    "ProjectionError",
    "ProjectionStore",
    "ProjectionStoreError",
    "Projector",
    "ProjectorStatistics",
    "QueryGate",
    "QueryGateStatistics",
    "QueryLimit",
    "RebuildResult",
    "open_projector",
    "render_metrics",
    "render_status",
    "serve_queries",
]
