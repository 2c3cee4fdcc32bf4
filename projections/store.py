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
import msgspec

from events import (
    ChainKey,
    StoredMessage,
    UndecodableEventError,
    current_json,
    tenant_of_subject,
)

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
    "lease_holder",
    "lease_expires_at",
)
_COUNTERS: Final = frozenset({"attempt", "attempts", "qr_issued", "flood_waits", "restarts"})


def _status_column(name: str) -> str:
    if name == "tenant":
        return "coalesce(s.tenant, q.tenant) AS tenant"
    if name == "state":
        # A tenant whose subject holds messages that do not verify (not released yet).
        return "CASE WHEN q.tenant IS NULL THEN s.state ELSE 'quarantined' END AS state"
    if name in _COUNTERS:
        return f"coalesce(s.{name}, 0) AS {name}"
    return f"s.{name} AS {name}"


_STATUS_SQL: Final = (
    "SELECT * FROM (SELECT "  # noqa: S608 (fixed column names)
    + ", ".join(_status_column(name) for name in _STATUS_COLUMNS)
    + " FROM tenant_status s FULL OUTER JOIN"
    " (SELECT DISTINCT tenant FROM quarantine) q ON s.tenant = q.tenant)"
)


def _db_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _py_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Staged:
    """A batch ready for DuckDB: the events as two strings, and the dead letters."""

    seqs: str
    docs: str
    events: int
    dead: list[tuple[int, str, str]]
    lifted: list[int]


def _stage(items: Sequence[StoredMessage], key: ChainKey | None) -> _Staged:
    """Check every message with the codec (:func:`events.current_json`: the projection
    reads exactly what :func:`events.decode_event` reads) and, given the chain key, its MAC
    (a forged event never counts); join the good ones."""
    seqs: list[str] = []
    docs: list[bytes] = []
    dead: list[tuple[int, str, str]] = []
    lifted: list[int] = []
    for item in items:
        try:
            if key is not None and not (item.mac and key.check(item.data, item.mac)):
                dead.append((item.seq, item.subject, "MAC mismatch: event altered or forged"))
                continue
            doc = current_json(item.data, seq=item.seq, subject=item.subject)
        except UndecodableEventError as exc:
            dead.append((item.seq, item.subject, exc.why[:500]))
            continue
        if b'"type":"QuarantineLifted"' in doc:
            lifted.extend(_LIFTED.decode(doc).sequences)
        docs.append(doc)
        seqs.append(str(item.seq))
    return _Staged(",".join(seqs), b"\n".join(docs).decode(), len(docs), dead, lifted)


class _Lifted(msgspec.Struct):
    sequences: list[int]


_LIFTED: Final = msgspec.json.Decoder(_Lifted)


def _quarantine_rows(dead: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    rows = []
    for seq, subject, reason in dead:
        try:
            rows.append((seq, tenant_of_subject(subject), reason))
        except ValueError:
            continue  # not a tenant's subject: a dead letter only
    return rows


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
            result = self._apply(cur, items, generation, hook, self._key)
        hook("committed")
        return result

    @staticmethod
    def _apply(
        cur: duckdb.DuckDBPyConnection,
        items: Sequence[StoredMessage],
        sfx: str,
        hook: FaultHook,
        key: ChainKey | None,
    ) -> BatchResult:
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
            return BatchResult(0, 0, done, _py_time(row[1]) if row else None)
        hook("begun")
        staged = _stage(items, key)
        if staged.events:
            cur.execute(stage_sql(sfx), [staged.seqs, staged.docs])
        hook("loaded")
        if staged.dead:
            with cur.appender(f"dead_letters{sfx}", action="upsert") as app:
                app.append_rows(staged.dead)
            quarantined = _quarantine_rows(staged.dead)
            if quarantined:
                with cur.appender(f"quarantine{sfx}", action="upsert") as app:
                    app.append_rows(quarantined)
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
        return BatchResult(len(items), len(staged.dead), last.seq, _py_time(stored_at))

    # -- rebuild -------------------------------------------------------------------------

    def begin_rebuild(self) -> None:
        """Drop any half-built next generation and create it empty. Blocks."""
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
        sql = _STATUS_SQL
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
