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

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb

from events import (
    ChainKey,
    StoredMessage,
)

from ._staging import STATUS_COLUMNS, STATUS_SQL, quarantine_rows, stage
from ._telegram import TELEGRAM_DOWN_SQL, TELEGRAM_TABLE, telegram_rows
from .errors import ProjectionStoreError
from .leases import LEASE_TABLE, lease_metrics_sql
from .metrics import metrics_sql, shape_metrics, window_bounds
from .sql import TABLES, checkpoint_sql, fold_sql, schema_sql, stage_sql

__all__ = ["LIVE", "REBUILD", "BatchResult", "CheckpointInfo", "FaultHook", "ProjectionStore"]

LIVE: Final = ""
REBUILD: Final = "__rebuild"

FaultHook = Callable[[str], None]
"""Called with a step name inside :meth:`ProjectionStore.apply_batch` (tests raise from it):
``begun``, ``loaded`` (batch staged), ``upserted`` and ``checkpointed`` (one statement
writes the rows and the checkpoint; all these are before COMMIT), ``committed``."""


def _db_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _py_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


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

    def __init__(self, con: duckdb.DuckDBPyConnection, key: ChainKey | None = None) -> None:
        self._con = con
        self._key = key
        # Per generation: tenant -> MAC of its last projected event (None: projected before
        # heads were kept). Loaded on first use, updated only after a batch commits.
        self._heads: dict[str, dict[str, str | None]] = {}
        self._lock = threading.Lock()
        self._free: list[duckdb.DuckDBPyConnection] = []
        self._all: list[duckdb.DuckDBPyConnection] = []
        self._closed = False

    @classmethod
    def open(cls, path: str | Path, *, key: ChainKey | None = None) -> ProjectionStore:
        """Open (creating if needed) the file and its live tables. Blocks.

        With the chain ``key`` every message's MAC is checked: one that does not verify
        becomes a dead letter (and quarantines its tenant), never a projected event.

        Raises:
            ProjectionStoreError: the file cannot be opened (e.g. held by another process).
        """
        try:
            con = duckdb.connect(str(path))
            con.execute("SET TimeZone = 'UTC'")  # ICU is built in; connect(config=) is too early
            for statement in schema_sql(LIVE):
                con.execute(statement)
        except duckdb.Error as exc:
            raise ProjectionStoreError(f"cannot open projection store {path}: {exc}") from exc
        _make_private(Path(path))
        return cls(con, key)

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
        items: Sequence[StoredMessage],
        *,
        generation: str = LIVE,
        fault: FaultHook | None = None,
    ) -> BatchResult:
        """Fold ``items`` (in stream order) into the tables in ONE transaction with the
        checkpoint. Items at or below the checkpoint are skipped, so re-applying is harmless.
        Messages the codec refuses become ``dead_letters`` rows. Blocks.

        Raises:
            ProjectionStoreError: DuckDB failed; nothing of the batch is kept.
            Exception: whatever ``fault`` raises; nothing of the batch is kept.
        """
        hook = fault or (lambda _step: None)
        with self._transaction() as cur:
            heads = self._chain_heads(cur, generation) if self._key is not None else None
            result, moved = self._apply(cur, items, generation, hook, key=self._key, heads=heads)
        if heads is not None:
            heads.update(moved)
        hook("committed")
        return result

    def _chain_heads(self, cur: duckdb.DuckDBPyConnection, sfx: str) -> dict[str, str | None]:
        heads = self._heads.get(sfx)
        if heads is None:
            rows = cur.execute(
                f"SELECT s.tenant, h.mac FROM tenant_status{sfx} s"  # noqa: S608
                f" LEFT JOIN chain_heads{sfx} h ON h.tenant = s.tenant"
                f" UNION SELECT tenant, mac FROM chain_heads{sfx}"
            ).fetchall()
            heads = self._heads[sfx] = {}
            for tenant, mac in rows:
                if mac is not None or tenant not in heads:
                    heads[tenant] = mac
        return heads

    @staticmethod
    def _apply(
        cur: duckdb.DuckDBPyConnection,
        items: Sequence[StoredMessage],
        sfx: str,
        hook: FaultHook,
        *,
        key: ChainKey | None,
        heads: dict[str, str | None] | None,
    ) -> tuple[BatchResult, dict[str, str]]:
        # fetchall, not fetchone: DuckDB refuses further statements on an unfinished result.
        found = cur.execute(
            f"SELECT seq, stored_at FROM checkpoint{sfx} WHERE id = 1"  # noqa: S608
        ).fetchall()
        row = found[0] if found else None
        done = int(row[0]) if row else 0
        fresh: list[StoredMessage] = []
        for item in items:
            if item.seq > done:  # at or below: applied already (a replay after a restart)
                fresh.append(item)
                done = item.seq
        items = fresh
        if not items:
            return BatchResult(0, 0, done, _py_time(row[1]) if row else None), {}
        hook("begun")
        staged = stage(items, key, heads)
        if staged.events:
            cur.execute(stage_sql(sfx), [staged.seqs, staged.docs])
        hook("loaded")
        if staged.dead:
            with cur.appender(f"dead_letters{sfx}", action="upsert") as app:
                app.append_rows(staged.dead)
            quarantined = quarantine_rows(staged.dead)
            if quarantined:
                with cur.appender(f"quarantine{sfx}", action="upsert") as app:
                    app.append_rows(quarantined)
        if staged.heads:
            with cur.appender(f"chain_heads{sfx}", action="upsert") as app:
                app.append_rows(list(staged.heads.items()))
        if staged.service:
            with cur.appender(f"{TELEGRAM_TABLE}{sfx}", action="upsert") as app:
                app.append_rows(telegram_rows(staged.service))
        if staged.lifted:
            released = ",".join(str(int(seq)) for seq in staged.lifted)
            cur.execute(f"DELETE FROM quarantine{sfx} WHERE seq IN ({released})")  # noqa: S608
        last = items[-1]
        stored_at = next((_db_time(i.stored_at) for i in reversed(items) if i.stored_ns), None)
        # One call for the fold and the checkpoint: every call waits for the GIL, which the
        # event loop holds while it reads the log, so calls cost milliseconds each.
        statements = fold_sql(sfx) if staged.events else []
        statements.append(checkpoint_sql(sfx, last.seq, stored_at, len(items)))
        cur.execute(";\n".join(statements))
        hook("upserted")
        hook("checkpointed")
        return BatchResult(
            len(items), len(staged.dead), last.seq, _py_time(stored_at)
        ), staged.heads

    # -- rebuild -------------------------------------------------------------------------

    def begin_rebuild(self) -> None:
        """Drop any half-built next generation and create it empty. Blocks."""
        self._heads.pop(REBUILD, None)
        with self._transaction() as cur:
            for table in TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {table}{REBUILD}")
            for statement in schema_sql(REBUILD):
                cur.execute(statement)

    def swap_rebuild(self) -> CheckpointInfo:
        """Replace the live tables by the rebuilt ones in one transaction; readers see the
        old or the new generation, never a mix. Returns the new live checkpoint. Blocks."""
        with self._transaction() as cur:
            for table in TABLES:
                cur.execute(f"DROP TABLE {table}")
                cur.execute(f"ALTER TABLE {table}{REBUILD} RENAME TO {table}")
        self._heads.clear()
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
        sql = STATUS_SQL
        with self._cursor() as cur:
            if tenant is None:
                rows = cur.execute(sql + " ORDER BY tenant").fetchall()
            else:
                rows = cur.execute(sql + " WHERE tenant = ?", [tenant]).fetchall()
        return [
            {
                name: _py_time(value) if isinstance(value, datetime) else value
                for name, value in zip(STATUS_COLUMNS, row, strict=True)
            }
            for row in rows
        ]

    def telegram_down(self) -> list[tuple[Any, ...]]:
        """``(dc, since, failures, retry_after_s)`` of the DCs whose last word is down. Blocks."""
        with self._cursor() as cur:
            return cur.execute(TELEGRAM_DOWN_SQL).fetchall()

    def metrics(self, *, now: datetime, window_s: int, tenant: str | None = None) -> dict[str, Any]:
        """The metrics reply (see :mod:`projections.metrics`) for a window ending at ``now``."""
        start, end = window_bounds(now, window_s)
        with self._cursor() as cur:
            rows = cur.execute(
                metrics_sql("login_attempts"), [_db_time(start), _db_time(end)]
            ).fetchall()
            leases = cur.execute(lease_metrics_sql(), [_db_time(start), _db_time(end)]).fetchall()
        return shape_metrics(rows, window_s=window_s, tenant=tenant, lease_rows=leases)

    def dump(self, generation: str = LIVE) -> dict[str, list[tuple[Any, ...]]]:
        """Every projection table's rows in key order (for tests and rebuild checks). Blocks."""
        order = {
            "tenant_status": "tenant",
            "login_attempts": "tenant, attempt",
            "event_counts": "minute, tenant, type",
            "dead_letters": "seq",
            LEASE_TABLE: "tenant, lease_id",
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


def _make_private(path: Path) -> None:
    """Take group and other permissions off the database file and its WAL (one made by an
    older version or under a looser umask; tgqr's own umask keeps new ones private)."""
    for file in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
