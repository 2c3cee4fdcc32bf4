"""Metrics on a hand-built log match hand-computed figures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from events import (
    ActorRestarted,
    Authorized,
    Event,
    Expired,
    FloodWaited,
    LoginCancelled,
    LoginFailed,
    LoginStarted,
    PasswordRequired,
    QrIssued,
    Scanned,
)
from projections import METRIC_KEYS, ProjectionStore
from tests.projections._histories import T0, as_stored

NOW = T0 + timedelta(hours=3)


def at(seconds_before_now: float) -> Any:
    return NOW - timedelta(seconds=seconds_before_now)


def attempt(tenant: str, number: int, start: float, steps: list[tuple[str, float]]) -> list[Event]:
    """Events of one attempt started ``start`` s before NOW; steps are (kind, +seconds)."""
    env: dict[str, Any] = {"tenant": tenant, "attempt": number}
    t0 = at(start)
    out: list[Event] = [LoginStarted(**env, at=t0, deadline=t0 + timedelta(minutes=10))]
    for kind, offset in steps:
        when = t0 + timedelta(seconds=offset)
        match kind:
            case "qr":
                out.append(QrIssued(**env, at=when, url="tg://login?token=x", expires_at=when,
                                    dc_id=2))  # fmt: skip
            case "scan":
                out.append(Scanned(**env, at=when))
            case "password":
                out.append(PasswordRequired(**env, at=when))
            case "auth":
                out.append(Authorized(**env, at=when, user_id=7, dc_id=2, session_fingerprint="f"))
            case "expire":
                out.append(Expired(**env, at=when))
            case "flood":
                out.append(FloodWaited(**env, at=when, seconds=5, method="m"))
            case "restart":
                out.append(ActorRestarted(**env, at=when, restart=1, delay_s=0.5, error="e"))
            case "crash":
                out.append(LoginFailed(**env, at=when, reason="crashed"))
            case "cancel":
                out.append(LoginCancelled(**env, at=when))
    return out


def hand_built_log() -> list[Event]:
    return [
        *attempt("a", 1, 7200, [("qr", 1), ("scan", 5), ("auth", 6)]),  # outside the window
        *attempt("a", 2, 3600, [("qr", 1), ("scan", 10), ("auth", 20)]),  # on the boundary
        *attempt("a", 3, 1800, [("qr", 1), ("flood", 2), ("qr", 9), ("expire", 600)]),
        *attempt("b", 1, 1000, [("qr", 1), ("scan", 30), ("password", 31), ("auth", 70)]),
        *attempt("b", 2, 500, [("qr", 1), ("restart", 3), ("crash", 4)]),
        *attempt("b", 3, 100, [("qr", 1), ("flood", 2), ("flood", 20)]),  # still live
        *attempt("c", 1, 50, [("cancel", 10)]),
        *attempt("d", 1, 3601, [("expire", 600)]),  # one second too old
    ]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = ProjectionStore.open(tmp_path / "m.duckdb")
    store.apply_batch(as_stored(hand_built_log()))
    yield store
    store.close()


def test_global_figures(store: ProjectionStore) -> None:
    """Six attempts started in the hour: 2 authorized, 1 expired, 1 failed, 1 cancelled, 1 live."""
    reply = store.metrics(now=NOW, window_s=3600)
    assert reply["ok"] is True
    assert reply["window_s"] == 3600
    g = reply["global"]
    assert list(g) == list(METRIC_KEYS)
    assert (g["started"], g["authorized"], g["expired"], g["failed"], g["cancelled"]) == (
        6, 2, 1, 1, 1,
    )  # fmt: skip
    assert (g["flood_waits"], g["restarts"]) == (3, 1)
    assert g["success_rate"] == pytest.approx(2 / 5)
    assert g["qr_expiry_rate"] == pytest.approx(1 / 5)
    assert g["flood_wait_rate"] == pytest.approx(2 / 6)
    # scans 10 s and 30 s; authorizations 20 s and 70 s (linear interpolation).
    assert g["time_to_scan_p50_s"] == pytest.approx(20.0)
    assert g["time_to_scan_p95_s"] == pytest.approx(29.0)
    assert g["time_to_authorize_p50_s"] == pytest.approx(45.0)
    assert g["time_to_authorize_p95_s"] == pytest.approx(67.5)


def test_per_tenant_figures(store: ProjectionStore) -> None:
    """Each tenant with attempts in the window gets its own figures."""
    tenants = store.metrics(now=NOW, window_s=3600)["tenants"]
    assert sorted(tenants) == ["a", "b", "c"]
    a, b, c = tenants["a"], tenants["b"], tenants["c"]
    assert (a["started"], a["success_rate"], a["qr_expiry_rate"], a["flood_wait_rate"]) == (
        2, 0.5, 0.5, 0.5,
    )  # fmt: skip
    assert a["time_to_scan_p95_s"] == pytest.approx(10.0)
    assert (b["started"], b["authorized"], b["failed"], b["restarts"], b["flood_waits"]) == (
        3, 1, 1, 1, 2,
    )  # fmt: skip
    assert b["success_rate"] == 0.5
    assert b["flood_wait_rate"] == pytest.approx(1 / 3)
    assert b["time_to_authorize_p50_s"] == pytest.approx(70.0)
    assert (c["started"], c["cancelled"], c["success_rate"]) == (1, 1, 0.0)
    assert c["time_to_scan_p50_s"] is None


def test_tenant_filter_narrows_only_the_tenants(store: ProjectionStore) -> None:
    """With a tenant, ``global`` stays global; an unknown tenant gets zeros and Nones."""
    reply = store.metrics(now=NOW, window_s=3600, tenant="b")
    assert list(reply["tenants"]) == ["b"]
    assert reply["global"]["started"] == 6
    ghost = store.metrics(now=NOW, window_s=3600, tenant="ghost")["tenants"]["ghost"]
    assert ghost["started"] == 0
    assert ghost["success_rate"] is None


def test_window_boundaries(store: ProjectionStore) -> None:
    """The window includes an attempt started exactly window_s ago, not one second earlier."""
    assert store.metrics(now=NOW, window_s=60)["global"]["started"] == 1
    assert store.metrics(now=NOW, window_s=3601)["global"]["started"] == 7
    assert store.metrics(now=NOW, window_s=3600)["global"]["started"] == 6
    empty = store.metrics(now=T0 - timedelta(days=1), window_s=60)
    assert empty["global"]["started"] == 0
    assert empty["global"]["success_rate"] is None
    assert empty["tenants"] == {}
