"""The DuckDB projection store: the only module that imports duckdb.

Every method blocks (disk IO, DuckDB work): call them from a worker thread
(``anyio.to_thread.run_sync``). Each call takes a cursor of its own from a small pool, so
calls from different threads never share a DuckDB connection. Timestamps are stored as naive
UTC ``TIMESTAMP`` (DuckDB's ``TIMESTAMPTZ`` needs pytz in Python) and come back aware UTC.

Two table generations share the file: the live one (``tenant_status`` ...) and, during a
rebuild, the next one (``tenant_status__rebuild`` ...); :meth:`ProjectionStore.swap_rebuild`
renames the next over the live one in one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb

from events import Record, Undecodable

from .errors import ProjectionStoreError
from .fold import Fold, LoginAttempt, TenantStatus, touched_keys
from .metrics import metrics_sql, shape_metrics, window_bounds

__all__ = ["LIVE", "REBUILD", "BatchResult", "CheckpointInfo", "FaultHook", "ProjectionStore"]

LIVE: Final = ""
REBUILD: Final = "__rebuild"

FaultHook = Callable[[str], None]
"""Called with a step name inside :meth:`ProjectionStore.apply_batch` (tests raise from it):
``begun``, ``loaded``, ``upserted``, ``checkpointed`` (all before COMMIT), ``committed``."""

_TABLES: Final = ("tenant_status", "login_attempts", "event_counts", "dead_letters", "checkpoint")

_STATUS_COLUMNS: Final = (
    "tenant",
    "state",
    "attempt",
    "user_id",
    "qr_url",
    "qr_expires_at",
    "dc_id",
    "started_at",
    "updated_at",
    "last_event",
    "last_seq",
    "attempts",
    "qr_issued",
    "flood_waits",
    "restarts",
)
_ATTEMPT_COLUMNS: Final = (
    "tenant",
    "attempt",
    "started_at",
    "first_qr_at",
    "scanned_at",
    "authorized_at",
    "ended_at",
    "outcome",
    "fail_reason",
    "user_id",
    "qr_count",
    "flood_waits",
    "flood_wait_seconds",
    "restarts",
    "time_to_scan_s",
    "time_to_authorize_s",
)


def _schema(sfx: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS tenant_status{sfx} (
            tenant VARCHAR PRIMARY KEY, state VARCHAR NOT NULL, attempt BIGINT NOT NULL,
            user_id BIGINT, qr_url VARCHAR, qr_expires_at TIMESTAMP, dc_id INTEGER,
            started_at TIMESTAMP, updated_at TIMESTAMP, last_event VARCHAR,
            last_seq BIGINT NOT NULL, attempts BIGINT NOT NULL, qr_issued BIGINT NOT NULL,
            flood_waits BIGINT NOT NULL, restarts BIGINT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS login_attempts{sfx} (
            tenant VARCHAR NOT NULL, attempt BIGINT NOT NULL, started_at TIMESTAMP,
            first_qr_at TIMESTAMP, scanned_at TIMESTAMP, authorized_at TIMESTAMP,
            ended_at TIMESTAMP, outcome VARCHAR, fail_reason VARCHAR, user_id BIGINT,
            qr_count BIGINT NOT NULL, flood_waits BIGINT NOT NULL,
            flood_wait_seconds BIGINT NOT NULL, restarts BIGINT NOT NULL,
            time_to_scan_s DOUBLE, time_to_authorize_s DOUBLE,
            PRIMARY KEY (tenant, attempt))""",
        f"""CREATE TABLE IF NOT EXISTS event_counts{sfx} (
            minute TIMESTAMP NOT NULL, tenant VARCHAR NOT NULL, type VARCHAR NOT NULL,
            count BIGINT NOT NULL, PRIMARY KEY (minute, tenant, type))""",
        f"""CREATE TABLE IF NOT EXISTS dead_letters{sfx} (
            seq BIGINT PRIMARY KEY, subject VARCHAR NOT NULL, reason VARCHAR NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS checkpoint{sfx} (
            id INTEGER PRIMARY KEY, seq BIGINT NOT NULL, stored_at TIMESTAMP,
            applied BIGINT NOT NULL)""",
        f"INSERT INTO checkpoint{sfx} VALUES (1, 0, NULL, 0) ON CONFLICT DO NOTHING",  # noqa: S608
    ]


def _db_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _py_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _status_row(s: TenantStatus) -> tuple[Any, ...]:
    t = _db_time
    return (
        s.tenant, s.state, s.attempt, s.user_id, s.qr_url, t(s.qr_expires_at), s.dc_id,
        t(s.started_at), t(s.updated_at), s.last_event, s.last_seq, s.attempts, s.qr_issued,
        s.flood_waits, s.restarts,
    )  # fmt: skip


def _attempt_row(a: LoginAttempt) -> tuple[Any, ...]:
    t = _db_time
    return (
        a.tenant, a.attempt, t(a.started_at), t(a.first_qr_at), t(a.scanned_at),
        t(a.authorized_at), t(a.ended_at), a.outcome, a.fail_reason, a.user_id, a.qr_count,
        a.flood_waits, a.flood_wait_seconds, a.restarts, a.time_to_scan_s,
        a.time_to_authorize_s,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one :meth:`ProjectionStore.apply_batch` committed."""

    applied: int
    dead_letters: int
    checkpoint: int
    stored_at: datetime | None


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """The checkpoint row: last applied sequence, its storage time, events applied so far."""

    seq: int
    stored_at: datetime | None
    applied: int


class ProjectionStore:
    """The projection tables in one DuckDB file (``":memory:"`` works for quick checks)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._lock = threading.Lock()
        self._free: list[duckdb.DuckDBPyConnection] = []
        self._all: list[duckdb.DuckDBPyConnection] = []
        self._closed = False

    @classmethod
    def open(cls, path: str | Path) -> ProjectionStore:
        """Open (creating if needed) the file and its live tables. Blocks.

        Raises:
            ProjectionStoreError: the file cannot be opened (e.g. held by another process).
        """
        try:
            con = duckdb.connect(str(path))
            for statement in _schema(LIVE):
                con.execute(statement)
        except duckdb.Error as exc:
            raise ProjectionStoreError(f"cannot open projection store {path}: {exc}") from exc
        return cls(con)

    def close(self) -> None:
        """Close every cursor and the database. Blocks; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            cursors, self._all, self._free = self._all, [], []
        for cur in cursors:
            cur.close()
        self._con.close()

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            if self._closed:
                raise ProjectionStoreError("projection store is closed")
            if self._free:
                cur = self._free.pop()
            else:
                cur = self._con.cursor()
                self._all.append(cur)
        try:
            yield cur
        except duckdb.Error as exc:
            raise ProjectionStoreError(str(exc)) from exc
        finally:
            with self._lock:
                if not self._closed:
                    self._free.append(cur)

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor inside BEGIN ... COMMIT; any exception rolls everything back."""
        with self._cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    # -- writing -------------------------------------------------------------------------

    def apply_batch(
        self,
        items: Sequence[Record | Undecodable],
        *,
        generation: str = LIVE,
        fault: FaultHook | None = None,
    ) -> BatchResult:
        """Fold ``items`` (in stream order) into the tables in ONE transaction with the
        checkpoint. Items at or below the checkpoint are skipped, so re-applying is harmless.
        Undecodable items become ``dead_letters`` rows. Blocks.

        Raises:
            ProjectionStoreError: DuckDB failed; nothing of the batch is kept.
            Exception: whatever ``fault`` raises; nothing of the batch is kept.
        """
        hook = fault or (lambda _step: None)
        with self._transaction() as cur:
            result = self._apply(cur, items, generation, hook)
        hook("committed")
        return result

    def _apply(
        self,
        cur: duckdb.DuckDBPyConnection,
        items: Sequence[Record | Undecodable],
        sfx: str,
        hook: FaultHook,
    ) -> BatchResult:
        row = cur.execute(
            f"SELECT seq, stored_at FROM checkpoint{sfx} WHERE id = 1"  # noqa: S608
        ).fetchone()
        done = int(row[0]) if row else 0
        fresh = [item for item in items if item.seq > done]
        if not fresh:
            return BatchResult(0, 0, done, _py_time(row[1]) if row else None)
        hook("begun")
        records = [item for item in fresh if isinstance(item, Record)]
        dead = [item for item in fresh if isinstance(item, Undecodable)]
        fold = self._load(cur, sfx, [record.event for record in records])
        hook("loaded")
        for record in records:
            fold.apply(record.seq, record.event)
        self._upsert(cur, sfx, fold, dead)
        hook("upserted")
        last = fresh[-1]
        stored_at = _db_time(last.stored_at) if isinstance(last, Record) else None
        cur.execute(
            f"UPDATE checkpoint{sfx} SET seq = ?, stored_at = coalesce(?, stored_at), "  # noqa: S608
            "applied = applied + ? WHERE id = 1",
            [last.seq, stored_at, len(fresh)],
        )
        hook("checkpointed")
        return BatchResult(len(fresh), len(dead), last.seq, _py_time(stored_at))

    def _load(self, cur: duckdb.DuckDBPyConnection, sfx: str, events: Sequence[Any]) -> Fold:
        keys = touched_keys(events)
        fold = Fold()
        if not keys.tenants:
            return fold
        cols = ", ".join(_STATUS_COLUMNS)
        rows = cur.execute(
            f"SELECT {cols} FROM tenant_status{sfx} "  # noqa: S608
            "WHERE tenant IN (SELECT unnest(?::VARCHAR[]))",
            [list(keys.tenants)],
        ).fetchall()
        for r in rows:
            fold.status[r[0]] = TenantStatus(
                r[0], r[1], r[2], r[3], r[4], _py_time(r[5]), r[6], _py_time(r[7]),
                _py_time(r[8]), r[9], r[10], r[11], r[12], r[13], r[14],
            )  # fmt: skip
        cols = ", ".join(f"a.{c}" for c in _ATTEMPT_COLUMNS)
        tenants, numbers = zip(*keys.attempts, strict=True)
        rows = cur.execute(
            f"SELECT {cols} FROM login_attempts{sfx} a JOIN (SELECT unnest(?::VARCHAR[]) AS t, "  # noqa: S608
            "unnest(?::BIGINT[]) AS n) k ON a.tenant = k.t AND a.attempt = k.n",
            [list(tenants), list(numbers)],
        ).fetchall()
        for r in rows:
            fold.attempts[(r[0], r[1])] = LoginAttempt(
                r[0], r[1], _py_time(r[2]), _py_time(r[3]), _py_time(r[4]), _py_time(r[5]),
                _py_time(r[6]), r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15],
            )  # fmt: skip
        minutes, count_tenants, types = zip(*keys.counts, strict=True)
        rows = cur.execute(
            f"SELECT c.minute, c.tenant, c.type, c.count FROM event_counts{sfx} c JOIN ("  # noqa: S608
            "SELECT unnest(?::TIMESTAMP[]) AS m, unnest(?::VARCHAR[]) AS t, "
            "unnest(?::VARCHAR[]) AS y) k ON c.minute = k.m AND c.tenant = k.t AND c.type = k.y",
            [[_db_time(m) for m in minutes], list(count_tenants), list(types)],
        ).fetchall()
        for minute, tenant, kind, count in rows:
            fold.counts[(minute.replace(tzinfo=UTC), tenant, kind)] = count
        return fold

    @staticmethod
    def _upsert(
        cur: duckdb.DuckDBPyConnection, sfx: str, fold: Fold, dead: Sequence[Undecodable]
    ) -> None:
        if fold.status:
            with cur.appender(f"tenant_status{sfx}", action="upsert") as app:
                app.append_rows([_status_row(row) for row in fold.status.values()])
        if fold.attempts:
            with cur.appender(f"login_attempts{sfx}", action="upsert") as app:
                app.append_rows([_attempt_row(row) for row in fold.attempts.values()])
        if fold.counts:
            with cur.appender(f"event_counts{sfx}", action="upsert") as app:
                app.append_rows(
                    [(_db_time(m), tenant, kind, n) for (m, tenant, kind), n in fold.counts.items()]
                )
        if dead:
            with cur.appender(f"dead_letters{sfx}", action="upsert") as app:
                app.append_rows([(d.seq, d.subject, d.error.why[:500]) for d in dead])

    # -- rebuild -------------------------------------------------------------------------

    def begin_rebuild(self) -> None:
        """Drop any half-built next generation and create it empty. Blocks."""
        with self._transaction() as cur:
            for table in _TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {table}{REBUILD}")
            for statement in _schema(REBUILD):
                cur.execute(statement)

    def swap_rebuild(self) -> CheckpointInfo:
        """Replace the live tables by the rebuilt ones in one transaction; readers see the
        old or the new generation, never a mix. Returns the new live checkpoint. Blocks."""
        with self._transaction() as cur:
            for table in _TABLES:
                cur.execute(f"DROP TABLE {table}")
                cur.execute(f"ALTER TABLE {table}{REBUILD} RENAME TO {table}")
        return self.checkpoint()

    # -- reading -------------------------------------------------------------------------

    def checkpoint(self, generation: str = LIVE) -> CheckpointInfo:
        """The generation's checkpoint. Blocks."""
        with self._cursor() as cur:
            row = cur.execute(
                f"SELECT seq, stored_at, applied FROM checkpoint{generation} WHERE id = 1"  # noqa: S608
            ).fetchone()
        if row is None:
            return CheckpointInfo(0, None, 0)
        return CheckpointInfo(int(row[0]), _py_time(row[1]), int(row[2]))

    def status(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """``tenant_status`` rows as dicts (one tenant, or all sorted by tenant). Blocks."""
        cols = ", ".join(_STATUS_COLUMNS)
        sql = f"SELECT {cols} FROM tenant_status"  # noqa: S608
        with self._cursor() as cur:
            if tenant is None:
                rows = cur.execute(sql + " ORDER BY tenant").fetchall()
            else:
                rows = cur.execute(sql + " WHERE tenant = ?", [tenant]).fetchall()
        return [
            {
                name: _py_time(value) if isinstance(value, datetime) else value
                for name, value in zip(_STATUS_COLUMNS, row, strict=True)
            }
            for row in rows
        ]

    def metrics(self, *, now: datetime, window_s: int, tenant: str | None = None) -> dict[str, Any]:
        """The metrics reply (see :mod:`projections.metrics`) for a window ending at ``now``."""
        start, end = window_bounds(now, window_s)
        with self._cursor() as cur:
            rows = cur.execute(
                metrics_sql("login_attempts"), [_db_time(start), _db_time(end)]
            ).fetchall()
        return shape_metrics(rows, window_s=window_s, tenant=tenant)

    def dump(self, generation: str = LIVE) -> dict[str, list[tuple[Any, ...]]]:
        """Every projection table's rows in key order (for tests and rebuild checks). Blocks."""
        order = {
            "tenant_status": "tenant",
            "login_attempts": "tenant, attempt",
            "event_counts": "minute, tenant, type",
            "dead_letters": "seq",
            "checkpoint": "id",
        }
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self._cursor() as cur:
            for table, key in order.items():
                out[table] = cur.execute(
                    f"SELECT * FROM {table}{generation} ORDER BY {key}"  # noqa: S608
                ).fetchall()
        return out

    def ping(self) -> None:
        """Run a trivial query. Blocks. Raises ProjectionStoreError if DuckDB fails."""
        with self._cursor() as cur:
            cur.execute("SELECT 1").fetchall()
