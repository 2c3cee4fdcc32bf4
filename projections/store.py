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

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import duckdb

from events import Record, Undecodable

from .errors import ProjectionStoreError
from .fold import AttemptKey, CountKey, Fold, LoginAttempt, TenantStatus, touched_keys
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

K = TypeVar("K")
V = TypeVar("V")


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


def _from_cache(
    keys: Iterable[K], cached: Mapping[K, V], complete: bool, into: dict[K, V]
) -> list[K]:
    """Copy the cached rows of ``keys`` into ``into``; return the keys to load from the table
    (none when the cache holds the whole table: a miss then means "no such row")."""
    missing: list[K] = []
    for key in keys:
        row = cached.get(key)
        if row is not None:
            into[key] = row
        elif not complete:
            missing.append(key)
    return missing


@dataclass(slots=True)
class _RowCache:
    """Rows of one table generation kept between batches. A ``*_complete`` table cache
    holds every row of its table, so a miss there means "no such row" (no query needed).
    Valid only because this store is the tables' only writer; dropped on any failure."""

    status: dict[str, TenantStatus] = field(default_factory=dict)
    attempts: dict[AttemptKey, LoginAttempt] = field(default_factory=dict)
    counts: dict[CountKey, int] = field(default_factory=dict)
    status_complete: bool = False
    attempts_complete: bool = False
    counts_complete: bool = False

    def trim(self, limit: int) -> None:
        """Forget the oldest entries of a table cache above ``limit`` (it is then partial)."""
        for name in ("status", "attempts", "counts"):
            table: dict[Any, Any] = getattr(self, name)
            if len(table) > limit:
                for key in list(itertools.islice(table, len(table) - limit * 3 // 4)):
                    del table[key]
                setattr(self, f"{name}_complete", False)


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

    def __init__(self, con: duckdb.DuckDBPyConnection, *, cache_rows: int = 250_000) -> None:
        self._con = con
        self._cache_rows = cache_rows
        self._caches: dict[str, _RowCache] = {}
        self._lock = threading.Lock()
        self._free: list[duckdb.DuckDBPyConnection] = []
        self._all: list[duckdb.DuckDBPyConnection] = []
        self._closed = False

    @classmethod
    def open(cls, path: str | Path, *, cache_rows: int = 250_000) -> ProjectionStore:
        """Open (creating if needed) the file and its live tables. Blocks.

        Up to ``cache_rows`` rows per table are kept in memory between batches (this store
        is the tables' only writer), so a batch loads from DuckDB only what it misses.

        Raises:
            ProjectionStoreError: the file cannot be opened (e.g. held by another process).
        """
        try:
            con = duckdb.connect(str(path))
            for statement in _schema(LIVE):
                con.execute(statement)
        except duckdb.Error as exc:
            raise ProjectionStoreError(f"cannot open projection store {path}: {exc}") from exc
        return cls(con, cache_rows=cache_rows)

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
        try:
            with self._transaction() as cur:
                result, fold = self._apply(cur, items, generation, hook)
        except BaseException:
            # The fold mutated cached rows in place: forget them, the tables are the truth.
            self._caches.pop(generation, None)
            raise
        if fold is not None:
            self._remember(generation, fold)
        hook("committed")
        return result

    def _remember(self, generation: str, fold: Fold) -> None:
        cache = self._caches.get(generation)
        if cache is None:
            return
        cache.status.update(fold.status)
        cache.attempts.update(fold.attempts)
        cache.counts.update(fold.counts)
        cache.trim(self._cache_rows)

    def _apply(
        self,
        cur: duckdb.DuckDBPyConnection,
        items: Sequence[Record | Undecodable],
        sfx: str,
        hook: FaultHook,
    ) -> tuple[BatchResult, Fold | None]:
        # fetchall, not fetchone: DuckDB refuses further statements on an unfinished result.
        found = cur.execute(
            f"SELECT seq, stored_at FROM checkpoint{sfx} WHERE id = 1"  # noqa: S608
        ).fetchall()
        row = found[0] if found else None
        done = int(row[0]) if row else 0
        fresh: list[Record | Undecodable] = []
        for item in items:
            if item.seq > done:  # at or below: already applied (a replay after a restart)
                fresh.append(item)
                done = item.seq
        if not fresh:
            return BatchResult(0, 0, done, _py_time(row[1]) if row else None), None
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
        stored_at = _db_time(records[-1].stored_at) if records else None
        cur.execute(
            f"UPDATE checkpoint{sfx} SET seq = ?, stored_at = coalesce(?, stored_at), "  # noqa: S608
            "applied = applied + ? WHERE id = 1",
            [last.seq, stored_at, len(fresh)],
        )
        hook("checkpointed")
        return BatchResult(len(fresh), len(dead), last.seq, _py_time(stored_at)), fold

    def _cache_for(self, cur: duckdb.DuckDBPyConnection, sfx: str) -> _RowCache:
        cache = self._caches.get(sfx)
        if cache is None:
            cache = self._caches[sfx] = _RowCache()
            counts = cur.execute(
                f"SELECT (SELECT count(*) FROM tenant_status{sfx}), "  # noqa: S608
                f"(SELECT count(*) FROM login_attempts{sfx}), "
                f"(SELECT count(*) FROM event_counts{sfx})"
            ).fetchall()[0]
            # Small tables are loaded whole, so that a miss means "no such row".
            if counts[0] <= self._cache_rows:
                self._load_status(cur, sfx, None, cache.status)
                cache.status_complete = True
            if counts[1] <= self._cache_rows:
                self._load_attempts(cur, sfx, None, cache.attempts)
                cache.attempts_complete = True
            if counts[2] <= self._cache_rows:
                self._load_counts(cur, sfx, None, cache.counts)
                cache.counts_complete = True
        return cache

    def _load(self, cur: duckdb.DuckDBPyConnection, sfx: str, events: Sequence[Any]) -> Fold:
        """The stored rows of every key the batch touches, from the cache or the tables."""
        keys = touched_keys(events)
        cache = self._cache_for(cur, sfx)
        fold = Fold()
        if missing := _from_cache(keys.tenants, cache.status, cache.status_complete, fold.status):
            self._load_status(cur, sfx, missing, fold.status)
        if missing_attempts := _from_cache(
            keys.attempts, cache.attempts, cache.attempts_complete, fold.attempts
        ):
            self._load_attempts(cur, sfx, missing_attempts, fold.attempts)
        if missing_counts := _from_cache(
            keys.counts, cache.counts, cache.counts_complete, fold.counts
        ):
            self._load_counts(cur, sfx, missing_counts, fold.counts)
        return fold

    @staticmethod
    def _load_status(
        cur: duckdb.DuckDBPyConnection,
        sfx: str,
        tenants: list[str] | None,
        into: dict[str, TenantStatus],
    ) -> None:
        sql = f"SELECT {', '.join(_STATUS_COLUMNS)} FROM tenant_status{sfx}"  # noqa: S608
        if tenants is None:
            rows = cur.execute(sql).fetchall()
        else:
            rows = cur.execute(
                sql + " WHERE tenant IN (SELECT unnest(?::VARCHAR[]))", [tenants]
            ).fetchall()
        for r in rows:
            into[r[0]] = TenantStatus(
                r[0], r[1], r[2], r[3], r[4], _py_time(r[5]), r[6], _py_time(r[7]),
                _py_time(r[8]), r[9], r[10], r[11], r[12], r[13], r[14],
            )  # fmt: skip

    @staticmethod
    def _load_attempts(
        cur: duckdb.DuckDBPyConnection,
        sfx: str,
        keys: list[AttemptKey] | None,
        into: dict[AttemptKey, LoginAttempt],
    ) -> None:
        sql = f"SELECT {', '.join(f'a.{c}' for c in _ATTEMPT_COLUMNS)} FROM login_attempts{sfx} a"  # noqa: S608
        if keys is None:
            rows = cur.execute(sql).fetchall()
        else:
            tenants, numbers = zip(*keys, strict=True)
            rows = cur.execute(
                sql + " JOIN (SELECT unnest(?::VARCHAR[]) AS t, unnest(?::BIGINT[]) AS n) k "
                "ON a.tenant = k.t AND a.attempt = k.n",
                [list(tenants), list(numbers)],
            ).fetchall()
        for r in rows:
            into[(r[0], r[1])] = LoginAttempt(
                r[0], r[1], _py_time(r[2]), _py_time(r[3]), _py_time(r[4]), _py_time(r[5]),
                _py_time(r[6]), r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15],
            )  # fmt: skip

    @staticmethod
    def _load_counts(
        cur: duckdb.DuckDBPyConnection,
        sfx: str,
        keys: list[CountKey] | None,
        into: dict[CountKey, int],
    ) -> None:
        sql = f"SELECT c.minute, c.tenant, c.type, c.count FROM event_counts{sfx} c"  # noqa: S608
        if keys is None:
            rows = cur.execute(sql).fetchall()
        else:
            minutes, tenants, types = zip(*keys, strict=True)
            rows = cur.execute(
                sql + " JOIN (SELECT unnest(?::TIMESTAMP[]) AS m, unnest(?::VARCHAR[]) AS t, "
                "unnest(?::VARCHAR[]) AS y) k ON c.minute = k.m AND c.tenant = k.t "
                "AND c.type = k.y",
                [[_db_time(m) for m in minutes], list(tenants), list(types)],
            ).fetchall()
        for minute, tenant, kind, count in rows:
            into[(minute.replace(tzinfo=UTC), tenant, kind)] = count

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
        self._caches.pop(REBUILD, None)
        with self._transaction() as cur:
            for table in _TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {table}{REBUILD}")
            for statement in _schema(REBUILD):
                cur.execute(statement)

    def swap_rebuild(self) -> CheckpointInfo:
        """Replace the live tables by the rebuilt ones in one transaction; readers see the
        old or the new generation, never a mix. Returns the new live checkpoint. Blocks."""
        try:
            with self._transaction() as cur:
                for table in _TABLES:
                    cur.execute(f"DROP TABLE {table}")
                    cur.execute(f"ALTER TABLE {table}{REBUILD} RENAME TO {table}")
        finally:
            self._caches.pop(LIVE, None)
        rebuilt = self._caches.pop(REBUILD, None)
        if rebuilt is not None:
            self._caches[LIVE] = rebuilt
        return self.checkpoint()

    # -- reading -------------------------------------------------------------------------

    def checkpoint(self, generation: str = LIVE) -> CheckpointInfo:
        """The generation's checkpoint. Blocks."""
        with self._cursor() as cur:
            found = cur.execute(
                f"SELECT seq, stored_at, applied FROM checkpoint{generation} WHERE id = 1"  # noqa: S608
            ).fetchall()
        if not found:
            return CheckpointInfo(0, None, 0)
        row = found[0]
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
