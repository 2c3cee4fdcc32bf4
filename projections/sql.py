"""The projection, in SQL: the tables, and the set-based fold of one batch of events.

Pure module (:mod:`projections.store` runs the text). A batch arrives as one string of
newline-separated event JSON (current schema, see :func:`events.current_json`) and one of
comma-separated stream sequences; :func:`stage_sql` parses it into the ``batch`` table and
the fold statements merge the whole batch into the tables with one statement per table.

Every column merges associatively (a sum, the first or the last value by sequence, or a
value derived from merged columns), so folding a log in batches of any size gives the
same rows as folding it whole. The rules, per event in sequence order:

``tenant_status`` (one row per tenant)
    ``state``: the status the last status-naming event names (:data:`STATE_AFTER`, whatever
    came before it; ``idle`` before any). This is the table of ``actors.login.evolve``'s
    docstring, the one statement of the status rules; ``tests/test_status_rules.py`` holds the
    two equal (this package cannot import ``actors``, so the table is written again here).
    ``attempt``/``started_at``: of the last ``LoginStarted``. ``user_id``: set by
    ``Authorized``, cleared by ``LoginStarted``. ``dc_id``: set by ``QrIssued`` and
    ``Authorized``, cleared by ``LoginStarted``. ``qr_url``/``qr_expires_at``: set by
    ``QrIssued``, cleared by ``LoginStarted`` and every ending (:data:`CLEARS_QR`).
    ``updated_at``/``last_event``/``last_seq``: of the last event. Counters: ``attempts``
    (``LoginStarted``), ``qr_issued``, ``flood_waits``, ``restarts`` (``ActorRestarted``).
    ``lease_holder``/``lease_expires_at``: set by ``SessionLeased`` (a renewal moves the
    expiry), cleared by ``SessionReleased``, ``LoggedOut`` and ``LoginStarted``
    (:data:`CLEARS_LEASE`), as ``actors.login.evolve`` does. ``proxy``: the label of the
    last ``LoginStarted`` (``<scheme>://<host>:<port> #<fingerprint>``, never credentials;
    null when it named none).

``login_attempts`` (one row per tenant and attempt)
    ``started_at``: the last ``LoginStarted``; ``first_qr_at``/``scanned_at``: the first
    ``QrIssued``/``Scanned``; ``authorized_at``/``user_id``: the last ``Authorized``.
    ``outcome``/``ended_at``/``fail_reason``: the first ending (:data:`OUTCOME_OF`); later
    ones change nothing. Counters: ``qr_count``, ``flood_waits``, ``flood_wait_seconds``,
    ``restarts``. ``time_to_scan_s``/``time_to_authorize_s``: seconds from ``started_at`` to
    ``scanned_at``/``authorized_at`` (null while either is unknown).

``event_counts``: events per (minute of ``at``, tenant, type). ``session_leases``: one row per
lease (:mod:`projections.leases`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from ._telegram import TELEGRAM_TABLE, telegram_schema_sql
from .leases import LEASE_TABLE, lease_fold_sql, lease_schema_sql

__all__ = [
    "CLEARS_LEASE",
    "CLEARS_QR",
    "OUTCOME_OF",
    "STATE_AFTER",
    "TABLES",
    "checkpoint_sql",
    "fold_sql",
    "schema_sql",
    "stage_sql",
]

TABLES: Final = (
    "tenant_status",
    "login_attempts",
    "event_counts",
    "dead_letters",
    "quarantine",
    LEASE_TABLE,
    TELEGRAM_TABLE,
    "checkpoint",
)

# The status each event names; the events not listed leave it as it is.
STATE_AFTER: Final = {
    "LoginStarted": "pending",
    "QrIssued": "pending",
    "Scanned": "scanned",
    "PasswordRequired": "password_required",
    "PasswordRejected": "password_required",
    "Authorized": "authorized",
    "Expired": "expired",
    "LoginFailed": "failed",
    "LoginCancelled": "cancelled",
    "LoggedOut": "logged_out",
}
OUTCOME_OF: Final = {
    "Authorized": "authorized",
    "Expired": "expired",
    "LoginFailed": "failed",
    "LoginCancelled": "cancelled",
}
CLEARS_QR: Final = ("LoginStarted", *OUTCOME_OF, "LoggedOut")
CLEARS_LEASE: Final = ("SessionReleased", "LoggedOut", "LoginStarted")

# The fields of the event JSON the fold reads (a field an event type lacks reads as NULL).
_FIELDS: Final = {
    "type": "VARCHAR",
    "tenant": "VARCHAR",
    "attempt": "BIGINT",
    "at": "TIMESTAMPTZ",
    "url": "VARCHAR",
    "expires_at": "TIMESTAMPTZ",
    "dc_id": "INTEGER",
    "user_id": "BIGINT",
    "reason": "VARCHAR",
    "seconds": "BIGINT",
    "holder": "VARCHAR",
    "lease_id": "VARCHAR",
    "fence": "BIGINT",
    "proxy": "VARCHAR",
}

_COLUMN: Final = {"at": "ts"}  # AT is an SQL keyword


def _sql_list(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _sql_case(column: str, mapping: dict[str, str]) -> str:
    arms = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"CASE {column} {arms} END"


def schema_sql(sfx: str) -> list[str]:
    """The statements creating one generation of the tables (``sfx`` "" is the live one).

    Timestamps are naive UTC ``TIMESTAMP`` (the connection's time zone is UTC).
    """
    return [
        f"""CREATE TABLE IF NOT EXISTS tenant_status{sfx} (
            tenant VARCHAR PRIMARY KEY, state VARCHAR NOT NULL, attempt BIGINT NOT NULL,
            user_id BIGINT, qr_url VARCHAR, qr_expires_at TIMESTAMP, dc_id INTEGER,
            started_at TIMESTAMP, updated_at TIMESTAMP, last_event VARCHAR,
            last_seq BIGINT NOT NULL, attempts BIGINT NOT NULL, qr_issued BIGINT NOT NULL,
            flood_waits BIGINT NOT NULL, restarts BIGINT NOT NULL,
            lease_holder VARCHAR, lease_expires_at TIMESTAMP, proxy VARCHAR)""",
        # Files made before leases existed get the columns (NULL: no lease yet).
        f"ALTER TABLE tenant_status{sfx} ADD COLUMN IF NOT EXISTS lease_holder VARCHAR",
        f"ALTER TABLE tenant_status{sfx} ADD COLUMN IF NOT EXISTS lease_expires_at TIMESTAMP",
        # Files made before proxies existed: NULL until the tenant's next LoginStarted.
        f"ALTER TABLE tenant_status{sfx} ADD COLUMN IF NOT EXISTS proxy VARCHAR",
        lease_schema_sql(sfx),
        telegram_schema_sql(sfx),
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
        # Dead letters of a tenant's subject not released by a QuarantineLifted event yet.
        f"""CREATE TABLE IF NOT EXISTS quarantine{sfx} (
            seq BIGINT PRIMARY KEY, tenant VARCHAR NOT NULL, reason VARCHAR NOT NULL)""",
        # The MAC of each tenant's last projected event: the next one must link to it.
        f"""CREATE TABLE IF NOT EXISTS chain_heads{sfx} (
            tenant VARCHAR PRIMARY KEY, mac VARCHAR NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS checkpoint{sfx} (
            id INTEGER PRIMARY KEY, seq BIGINT NOT NULL, stored_at TIMESTAMP,
            applied BIGINT NOT NULL)""",
        f"INSERT INTO checkpoint{sfx} VALUES (1, 0, NULL, 0) ON CONFLICT DO NOTHING",  # noqa: S608
    ]


def stage_sql(sfx: str) -> str:
    """(Re)create the ``batch{sfx}`` temp table; params: sequences "1,2,..." and the events'
    JSON joined by newlines, in the same order."""
    structure = msgspec.json.encode(_FIELDS).decode()
    columns = ", ".join(
        f'e."{name}"::TIMESTAMP AS {_COLUMN.get(name, name)}'
        if kind == "TIMESTAMPTZ"
        else f'e."{name}" AS {_COLUMN.get(name, name)}'
        for name, kind in _FIELDS.items()
    )
    return f"""
        CREATE OR REPLACE TEMP TABLE batch{sfx} AS
        SELECT seq, {columns}
        FROM (
            SELECT seq::BIGINT AS seq, from_json(doc, '{structure}') AS e
            FROM (SELECT unnest(string_split(?, ',')) AS seq,
                         unnest(string_split(?, chr(10))) AS doc))
    """  # noqa: S608


def _counts_sql(sfx: str) -> str:
    return f"""
        INSERT INTO event_counts{sfx}
        SELECT date_trunc('minute', ts) AS minute, tenant, type, count(*) AS count
        FROM batch{sfx} GROUP BY ALL
        ON CONFLICT (minute, tenant, type) DO UPDATE SET count = count + excluded.count
    """  # noqa: S608


def _attempts_sql(sfx: str) -> str:
    outcome = _sql_case("type", OUTCOME_OF)
    return f"""
        INSERT INTO login_attempts{sfx}
        SELECT tenant, attempt, started_at, first_qr_at, scanned_at, authorized_at,
            ending.ended_at, ending.outcome, ending.reason, user_id,
            qr_count, flood_waits, flood_wait_seconds, restarts,
            epoch(scanned_at - started_at), epoch(authorized_at - started_at)
        FROM (
            SELECT tenant, attempt,
                arg_max(ts, seq) FILTER (WHERE type = 'LoginStarted') AS started_at,
                arg_min(ts, seq) FILTER (WHERE type = 'QrIssued') AS first_qr_at,
                arg_min(ts, seq) FILTER (WHERE type = 'Scanned') AS scanned_at,
                arg_max(ts, seq) FILTER (WHERE type = 'Authorized') AS authorized_at,
                arg_max(user_id, seq) FILTER (WHERE type = 'Authorized') AS user_id,
                arg_min({{'ended_at': ts, 'outcome': {outcome},
                          'reason': CASE WHEN type = 'LoginFailed' THEN reason END}}, seq)
                    FILTER (WHERE type IN ({_sql_list(list(OUTCOME_OF))})) AS ending,
                count(*) FILTER (WHERE type = 'QrIssued') AS qr_count,
                count(*) FILTER (WHERE type = 'FloodWaited') AS flood_waits,
                coalesce(sum(seconds) FILTER (WHERE type = 'FloodWaited'), 0)
                    AS flood_wait_seconds,
                count(*) FILTER (WHERE type = 'ActorRestarted') AS restarts
            FROM batch{sfx} GROUP BY tenant, attempt)
        ON CONFLICT (tenant, attempt) DO UPDATE SET
            started_at = coalesce(excluded.started_at, started_at),
            first_qr_at = coalesce(first_qr_at, excluded.first_qr_at),
            scanned_at = coalesce(scanned_at, excluded.scanned_at),
            authorized_at = coalesce(excluded.authorized_at, authorized_at),
            user_id = coalesce(excluded.user_id, user_id),
            ended_at = CASE WHEN outcome IS NULL THEN excluded.ended_at ELSE ended_at END,
            fail_reason =
                CASE WHEN outcome IS NULL THEN excluded.fail_reason ELSE fail_reason END,
            outcome = coalesce(outcome, excluded.outcome),
            qr_count = qr_count + excluded.qr_count,
            flood_waits = flood_waits + excluded.flood_waits,
            flood_wait_seconds = flood_wait_seconds + excluded.flood_wait_seconds,
            restarts = restarts + excluded.restarts,
            time_to_scan_s = epoch(coalesce(scanned_at, excluded.scanned_at)
                                   - coalesce(excluded.started_at, started_at)),
            time_to_authorize_s = epoch(coalesce(excluded.authorized_at, authorized_at)
                                        - coalesce(excluded.started_at, started_at))
    """  # noqa: S608


def _status_sql(sfx: str) -> str:
    changes_state = _sql_list(list(STATE_AFTER))
    state_after = _sql_case("b.last_state", STATE_AFTER)
    return f"""
        INSERT OR REPLACE INTO tenant_status{sfx}
        SELECT b.tenant,
            CASE WHEN b.last_state IS NULL THEN coalesce(o.state, 'idle') ELSE {state_after} END,
            coalesce(b.attempt, o.attempt, 0),
            CASE WHEN b.user IS NULL THEN o.user_id ELSE b.user.v END,
            CASE WHEN b.qr IS NULL THEN o.qr_url ELSE b.qr.url END,
            CASE WHEN b.qr IS NULL THEN o.qr_expires_at ELSE b.qr.expires_at END,
            CASE WHEN b.dc IS NULL THEN o.dc_id ELSE b.dc.v END,
            coalesce(b.started_at, o.started_at),
            b.updated_at, b.last_event, b.last_seq,
            coalesce(o.attempts, 0) + b.attempts,
            coalesce(o.qr_issued, 0) + b.qr_issued,
            coalesce(o.flood_waits, 0) + b.flood_waits,
            coalesce(o.restarts, 0) + b.restarts,
            CASE WHEN b.lease IS NULL THEN o.lease_holder ELSE b.lease.holder END,
            CASE WHEN b.lease IS NULL THEN o.lease_expires_at ELSE b.lease.expires_at END,
            CASE WHEN b.px IS NULL THEN o.proxy ELSE nullif(b.px.v, '') END
        FROM (
            SELECT tenant,
                arg_max(type, seq) FILTER (WHERE type IN ({changes_state})) AS last_state,
                arg_max(attempt, seq) FILTER (WHERE type = 'LoginStarted') AS attempt,
                arg_max(ts, seq) FILTER (WHERE type = 'LoginStarted') AS started_at,
                arg_max({{'v': proxy}}, seq) FILTER (WHERE type = 'LoginStarted') AS px,
                arg_max({{'v': user_id}}, seq)
                    FILTER (WHERE type IN ('LoginStarted', 'Authorized')) AS user,
                arg_max({{'v': dc_id}}, seq)
                    FILTER (WHERE type IN ('LoginStarted', 'QrIssued', 'Authorized')) AS dc,
                arg_max({{'url': url, 'expires_at': expires_at}}, seq)
                    FILTER (WHERE type IN ('QrIssued', {_sql_list(CLEARS_QR)})) AS qr,
                arg_max(ts, seq) AS updated_at,
                arg_max(type, seq) AS last_event,
                max(seq) AS last_seq,
                count(*) FILTER (WHERE type = 'LoginStarted') AS attempts,
                count(*) FILTER (WHERE type = 'QrIssued') AS qr_issued,
                count(*) FILTER (WHERE type = 'FloodWaited') AS flood_waits,
                count(*) FILTER (WHERE type = 'ActorRestarted') AS restarts,
                arg_max({{'holder': holder, 'expires_at': expires_at}}, seq)
                    FILTER (WHERE type IN ('SessionLeased', {_sql_list(CLEARS_LEASE)})) AS lease
            FROM batch{sfx} GROUP BY tenant) b
        LEFT JOIN tenant_status{sfx} o ON o.tenant = b.tenant
    """  # noqa: S608


def checkpoint_sql(sfx: str, seq: int, stored_at: datetime | None, applied: int) -> str:
    """Move the checkpoint to ``seq`` (stored at ``stored_at``, naive UTC, if known) after
    ``applied`` more messages. Literals, not parameters, so it can run in one call with the
    fold (the values are ours: two integers and a timestamp)."""
    at = f"TIMESTAMP '{stored_at.isoformat(sep=' ')}'" if stored_at else "stored_at"
    return (
        f"UPDATE checkpoint{sfx} SET seq = {int(seq)}, stored_at = {at}, "  # noqa: S608
        f"applied = applied + {int(applied)} WHERE id = 1"
    )


def fold_sql(sfx: str) -> list[str]:
    """The statements merging ``batch{sfx}`` into the tables of generation ``sfx``."""
    return [_counts_sql(sfx), _attempts_sql(sfx), _status_sql(sfx), lease_fold_sql(sfx)]
